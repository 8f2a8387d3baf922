use super::*;

#[test]
fn quantities() {
    for ok in ["50m", "0.5", "128Mi", "1Gi", "1e3", "2", ".5", "+1k"] {
        assert!(is_quantity(ok), "{ok}");
    }
    for bad in ["", "abc", "12MB", "1.2.3", "m", "5 m", "1e"] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn a_database_secret_becomes_an_env_reference_never_a_value() {
    let opts = SidecarOptions {
        database_secret: Some("dtc-db:url".into()),
        ..SidecarOptions::default()
    };
    assert!(opts.validate().is_ok());
    let env = sidecar_container(&opts).env.unwrap();
    assert_eq!(env[0].name, DATABASE_URL_ENV);
    assert_eq!(env[0].value, None);
    let r = env[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("dtc-db", "url"));
    assert_eq!(secret_ref("dtc-db"), ("dtc-db", "database_url"));
    assert!(sidecar_container(&SidecarOptions::default()).env.is_none());
    let bad = SidecarOptions {
        database_secret: Some("Bad_Name:k/y".into()),
        ..SidecarOptions::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("--database-secret") && e.contains("not a valid Secret key"),
        "{e}"
    );
}

#[test]
fn the_config_map_is_a_directory_mount_never_sub_path() {
    let c = sidecar_container(&SidecarOptions::default());
    let mounts = c.volume_mounts.unwrap();
    assert!(mounts.iter().all(|m| m.sub_path.is_none()));
    assert_eq!(mounts[0].mount_path, CONFIG_DIR);
}
