//! The browser client's npm packages (its chart library). On a fresh
//! checkout `web-client/node_modules` does not exist yet: the server
//! installs the locked versions once, with the machine's npm, before it
//! serves the page. Nothing is downloaded when they are already there.

use std::path::Path;
use std::process::Command;

use tracing::{info, warn};

/// The package the page cannot draw charts without.
const REQUIRED: &str = "node_modules/lightweight-charts/package.json";

/// Installs the page's runtime packages when they are missing; a failure is
/// logged (the page still trades, without charts) and never stops the exchange.
pub fn ensure(web_root: &Path) {
    if web_root.join(REQUIRED).exists() || !web_root.join("package-lock.json").exists() {
        return;
    }
    info!(dir = %web_root.display(), "installing the web client's packages (npm ci --omit=dev)");
    let status = Command::new("npm")
        .args(["ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(web_root)
        .status();
    match status {
        Ok(s) if s.success() => info!("web client packages installed"),
        Ok(s) => warn!(code = ?s.code(), "npm ci failed; the page will run without its charts"),
        Err(e) => warn!(error = %e, "npm is not available; the page will run without its charts"),
    }
}
