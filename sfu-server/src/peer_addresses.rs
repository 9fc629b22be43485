//! Which participant each remote UDP address belongs to, learned from the STUN checks that
//! name a participant's server ufrag, so that the datagrams naming none (DTLS, SRTP) find
//! their room.
//!
//! A STUN check's source address can be forged and its ufrag is readable on the wire, so an
//! address is learned (or moved to another participant) only from a check whose
//! MESSAGE-INTEGRITY verifies with the server's ICE password of that ufrag; a check that does
//! not verify is dropped. What one ufrag can make the table learn is bounded too: beyond
//! [`MAX_PER_UFRAG`] addresses the one heard from least recently is forgotten. A client's
//! live address, heard from with every packet it sends, stays.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sfu_core::stun;
use tracing::warn;

use crate::routing::{Route, Routes};
use crate::stun_auth;

/// Addresses learned for one ufrag at most (a client's candidate pairs, and the addresses an
/// ICE restart or a network change moves it to).
pub const MAX_PER_UFRAG: usize = 16;
/// Size at which addresses of ufrags that are gone are first swept.
const SWEEP_START: usize = 1024;

/// The learned addresses of one media socket's peers.
pub struct PeerAddresses {
    by_address: HashMap<SocketAddr, Learned>,
    by_ufrag: HashMap<String, Vec<SocketAddr>>,
    sweep_at: usize,
}

/// One learned address: whose it is, and when it was last heard from.
struct Learned {
    ufrag: String,
    heard: Instant,
}

impl Default for PeerAddresses {
    fn default() -> Self {
        Self {
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            sweep_at: SWEEP_START,
        }
    }
}

impl PeerAddresses {
    /// The route of a datagram from `source` received `at`: by the ufrag a STUN check names
    /// when the check verifies (and then its source is learned), else by the learned source.
    /// A check that does not verify has no route.
    pub fn route(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        at: Instant,
        routes: &Routes,
    ) -> Option<Route> {
        if let Some(ufrag) = stun::local_ufrag(datagram) {
            let route = routes.get(ufrag)?;
            if !stun_auth::verified(datagram, &route.ice_password) {
                return None;
            }
            let route = route.clone();
            self.learn(source, ufrag, at);
            return Some(route);
        }
        let learned = self.by_address.get_mut(&source)?;
        learned.heard = at;
        if let Some(route) = routes.get(&learned.ufrag) {
            return Some(route.clone());
        }
        self.forget(source);
        None
    }

    /// Forget the addresses of ufrags no longer routed, once the table has doubled since
    /// the last sweep.
    pub fn sweep(&mut self, routes: &Routes) {
        if self.by_address.len() < self.sweep_at {
            return;
        }
        self.by_ufrag.retain(|ufrag, _| routes.contains_key(ufrag));
        self.by_address
            .retain(|_, learned| routes.contains_key(&learned.ufrag));
        self.sweep_at = (self.by_address.len() * 2).max(SWEEP_START);
        if self.by_address.len() > 100_000 {
            warn!(
                entries = self.by_address.len(),
                "many live UDP peer addresses"
            );
        }
    }

    fn learn(&mut self, source: SocketAddr, ufrag: &str, at: Instant) {
        match self.by_address.get_mut(&source) {
            Some(learned) if learned.ufrag == ufrag => {
                learned.heard = at;
                return;
            }
            Some(_) => self.forget(source),
            None => {}
        }
        let known = self.by_ufrag.entry(ufrag.to_owned()).or_default();
        if known.len() >= MAX_PER_UFRAG {
            let by_address = &self.by_address;
            let stalest = known
                .iter()
                .enumerate()
                .min_by_key(|(_, address)| by_address.get(address).map(|l| l.heard))
                .map(|(index, _)| index);
            if let Some(index) = stalest {
                let address = known.swap_remove(index);
                self.by_address.remove(&address);
            }
        }
        known.push(source);
        let learned = Learned {
            ufrag: ufrag.to_owned(),
            heard: at,
        };
        self.by_address.insert(source, learned);
    }

    fn forget(&mut self, source: SocketAddr) {
        let Some(learned) = self.by_address.remove(&source) else {
            return;
        };
        if let Some(known) = self.by_ufrag.get_mut(&learned.ufrag) {
            known.retain(|address| *address != source);
            if known.is_empty() {
                self.by_ufrag.remove(&learned.ufrag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::udp::tests::{TEST_ICE_PASSWORD, binding_request, test_route};
    use sfu_core::ids::ParticipantId;

    fn routes_of(ufrag: &str) -> Routes {
        let routes: Routes = Arc::default();
        let (datagrams, _) = mpsc::channel(1);
        routes.insert(
            ufrag.to_owned(),
            test_route(datagrams, ParticipantId::new(1)),
        );
        routes
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_ufrag_teaches_a_bounded_number_of_addresses_and_live_ones_stay() {
        // Requirement: checks naming one ufrag from ever new (forgeable) addresses do not grow
        // the table without end, and the client's live address keeps routing meanwhile.
        let routes = routes_of("srvufrag");
        let mut peers = PeerAddresses::default();
        let check = binding_request("srvufrag");
        let media = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let start = Instant::now();
        let live = address(1);
        assert!(peers.route(&check, live, start, &routes).is_some());
        for port in 2..1000u16 {
            let at = start + Duration::from_millis(u64::from(port));
            assert!(peers.route(&check, address(port), at, &routes).is_some());
            // The client keeps sending media from its address.
            assert!(
                peers.route(&media, live, at, &routes).is_some(),
                "the live address was forgotten at {port}"
            );
        }
        assert_eq!(peers.by_address.len(), MAX_PER_UFRAG);
        assert!(
            peers.route(&media, address(999), start, &routes).is_some(),
            "the newest address"
        );
        assert!(
            peers.route(&media, address(500), start, &routes).is_none(),
            "an old forged one"
        );
    }

    #[test]
    fn addresses_of_a_gone_ufrag_stop_routing_and_are_swept() {
        // Requirement: once a participant is gone, its addresses route nothing and are freed.
        let routes = routes_of("srvufrag");
        let mut peers = PeerAddresses::default();
        let now = Instant::now();
        for port in 0..MAX_PER_UFRAG as u16 {
            peers.route(&binding_request("srvufrag"), address(port), now, &routes);
        }
        routes.clear();
        let media = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(peers.route(&media, address(0), now, &routes).is_none());
        peers.sweep_at = 0;
        peers.sweep(&routes);
        assert_eq!(peers.by_address.len(), 0);
    }

    #[test]
    fn only_a_verified_check_binds_an_address() {
        // Requirement: a STUN check naming another participant's ufrag from a live client's
        // address (its source forged) does not move that address unless its MESSAGE-INTEGRITY
        // verifies; a forged check is dropped, and the client's media keeps its route.
        let routes = routes_of("victim");
        let (attacker, _) = mpsc::channel(1);
        routes.insert(
            "attacker".to_owned(),
            test_route(attacker, ParticipantId::new(2)),
        );
        let mut peers = PeerAddresses::default();
        let now = Instant::now();
        let client = address(1);
        let media = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let owner = |peers: &mut PeerAddresses| {
            peers
                .route(&media, client, now, &routes)
                .map(|r| r.participant)
        };
        assert!(
            peers
                .route(&binding_request("victim"), client, now, &routes)
                .is_some()
        );
        assert_eq!(owner(&mut peers), Some(ParticipantId::new(1)));
        for forged in [
            crate::stun_auth::binding_request("attacker", None),
            crate::stun_auth::binding_request("attacker", Some("a guessed password")),
        ] {
            assert!(
                peers.route(&forged, client, now, &routes).is_none(),
                "a forged check is dropped"
            );
            assert_eq!(
                owner(&mut peers),
                Some(ParticipantId::new(1)),
                "the address stays the client's"
            );
        }
        assert!(
            peers
                .route(
                    &crate::stun_auth::binding_request("attacker", Some(TEST_ICE_PASSWORD)),
                    client,
                    now,
                    &routes
                )
                .is_some(),
            "a check that verifies moves the address (an ICE restart, a new network)"
        );
        assert_eq!(owner(&mut peers), Some(ParticipantId::new(2)));
    }
}
