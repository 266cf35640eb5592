//! The pipeline's TOML configuration with environment overrides: parsed,
//! overridden, validated. Its debug output (what logs show) must not depend
//! on the secrets in it.
#![no_main]

use cardlink_kafka::Config;
use cardlink_kafka::config::ENV_OVERRIDES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The TOML text, then optionally a NUL and one override value per line,
    // given to the overrides in ENV_OVERRIDES order (an empty line: unset).
    let (text, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(mut config) = Config::from_toml(text) else { return };
    if let Some(env) = env {
        let values: Vec<String> = String::from_utf8_lossy(env).lines().map(str::to_owned).collect();
        let get = |var: &str| {
            let i = ENV_OVERRIDES.iter().position(|(v, _)| *v == var)?;
            values.get(i).filter(|v| !v.is_empty()).cloned()
        };
        if config.apply_env(get).is_err() {
            return;
        }
    }
    let _ = config.validate();
    let shown = format!("{config:?}");
    let mut other = config.clone();
    other.kafka.security.sasl_password = other.kafka.security.sasl_password.map(|_| "other".into());
    for (k, v) in other.kafka.options.iter_mut() {
        if cardlink_kafka::config::is_secret_key(k) {
            *v = "other".into();
        }
    }
    assert_eq!(format!("{other:?}"), shown, "the debug output shows a secret");
});
