//! The rid ↔ layer mapping of a simulcast publisher: `q`, `h`, `f` are layers 0, 1, 2
//! whatever order the publisher lists them in and whichever it leaves out; other rids take
//! their place in the publisher's order.

/// The simulcast layer index of a rid: `q`, `h`, `f` are 0, 1, 2; others follow the publisher's order.
pub fn layer_of(rid: Option<&str>, rids: &[String]) -> u8 {
    match rid {
        None => 0,
        Some("q") => 0,
        Some("h") => 1,
        Some("f") => 2,
        Some(other) => rids
            .iter()
            .position(|r| r == other)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(0),
    }
}

/// The rid the publisher sends `layer` on: the inverse of [`layer_of`], whatever order the
/// publisher listed its rids in and whichever of q/h/f it left out.
pub fn rid_of(layer: u8, rids: &[String]) -> Option<&str> {
    rids.iter()
        .map(String::as_str)
        .find(|rid| layer_of(Some(rid), rids) == layer)
}

/// The layer the publisher sends that comes closest to `wish` from below (the lowest it
/// sends when it sends none at or below it): a publisher sending only `h` and `f` has no
/// layer 0 to fall back on.
pub fn nearest_layer(wish: u8, rids: &[String]) -> u8 {
    let layers = layers_of(rids);
    let lowest = layers.first().copied().unwrap_or(0);
    layers
        .into_iter()
        .filter(|layer| *layer <= wish)
        .max()
        .unwrap_or(lowest)
}

/// The layers a publisher's rids stand for, lowest first (`[0]` without simulcast).
pub fn layers_of(rids: &[String]) -> Vec<u8> {
    let mut layers: Vec<u8> = rids.iter().map(|rid| layer_of(Some(rid), rids)).collect();
    if layers.is_empty() {
        layers.push(0);
    }
    layers.sort_unstable();
    layers.dedup();
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn layers_and_rids_agree_whatever_order_the_publisher_lists_them_in() {
        // Requirement: keyframe requests, dynacast and the dashboard name the rid a layer is
        // received on, also for a publisher listing `f;h;q` or sending only `h;f`.
        let reversed = rids(&["f", "h", "q"]);
        assert_eq!(layers_of(&reversed), vec![0, 1, 2]);
        for layer in 0..3 {
            let rid = rid_of(layer, &reversed).expect("every layer has a rid");
            assert_eq!(layer_of(Some(rid), &reversed), layer);
        }
        assert_eq!(rid_of(0, &reversed), Some("q"));

        let upper = rids(&["h", "f"]);
        assert_eq!(layers_of(&upper), vec![1, 2]);
        assert_eq!(rid_of(1, &upper), Some("h"));
        assert_eq!(rid_of(2, &upper), Some("f"));
        assert_eq!(rid_of(0, &upper), None);
        assert_eq!(
            nearest_layer(0, &upper),
            1,
            "its lowest layer stands in for q"
        );
        assert_eq!(nearest_layer(2, &upper), 2);
        let outer = rids(&["q", "f"]);
        assert_eq!(nearest_layer(1, &outer), 0, "the closest from below");
        assert_eq!(nearest_layer(0, &[]), 0);

        let numbered = rids(&["0", "1", "2"]);
        assert_eq!(layers_of(&numbered), vec![0, 1, 2]);
        assert_eq!(rid_of(2, &numbered), Some("2"));

        assert_eq!(layers_of(&[]), vec![0]);
        assert_eq!(rid_of(0, &[]), None);
    }
}
