//! The browser client, embedded in the binary so it is served with no files on disk.

/// `index.html` of the web client.
pub const INDEX_HTML: &str = include_str!("../web/index.html");
/// The web client's library (`SfuClient`, no DOM).
pub const SFU_CLIENT_JS: &str = include_str!("../web/sfu-client.js");
/// `app.js` of the web client: its page, built on `SfuClient`.
pub const APP_JS: &str = include_str!("../web/app.js");
/// `style.css` of the web client.
pub const STYLE_CSS: &str = include_str!("../web/style.css");
/// The operators' dashboard page (its data comes from the admin API).
pub const DASHBOARD_HTML: &str = include_str!("../web/dashboard.html");
/// The dashboard's script.
pub const DASHBOARD_JS: &str = include_str!("../web/dashboard.js");
/// The dashboard's style sheet.
pub const DASHBOARD_CSS: &str = include_str!("../web/dashboard.css");
