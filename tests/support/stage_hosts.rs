//! The local fleet of the stage tests (tests/stages.rs, tests/stages_gates.rs): six hosts, each
//! a directory, in groups `lb`, `app` and `db`.

/// Six local hosts in groups `lb` (h1), `app` (h2–h4) and `db` (h5, h6).
pub const INVENTORY: &str = "\
defaults: { transport: local }
hosts:
  h1: { workdir: ./state/h1 }
  h2: { workdir: ./state/h2 }
  h3: { workdir: ./state/h3 }
  h4: { workdir: ./state/h4 }
  h5: { workdir: ./state/h5 }
  h6: { workdir: ./state/h6 }
groups:
  lb: { hosts: [h1] }
  app: { hosts: [h2, h3, h4] }
  db: { hosts: [h5, h6] }
";

/// A temporary directory holding `inventory.yaml` and the hosts' directories `state/h1`…`h6`.
pub fn directory() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.yaml"), INVENTORY).unwrap();
    for h in 1..=6 {
        std::fs::create_dir_all(dir.path().join(format!("state/h{h}"))).unwrap();
    }
    dir
}
