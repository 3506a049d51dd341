//! Where the HS256 secret comes from: settings/environment first, then the data directory
//! (written by an earlier `--demo` run), and for `--demo` only, a freshly generated one.

use std::path::Path;

use anyhow::Context;
use medgate_config::Settings;
use rand::RngCore;

const SECRET_FILE: &str = "jwt-secret";

pub fn jwt_secret(settings: &Settings, generate: bool) -> anyhow::Result<Option<String>> {
    if settings.auth.jwt_algorithm != "HS256" {
        return Ok(None);
    }
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(Some(secret.clone()));
    }
    let path = settings.data_dir.join(SECRET_FILE);
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(secret.trim().to_owned()));
    }
    if !generate {
        return Ok(None);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a JWT secret for the demo");
    Ok(Some(secret))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}
