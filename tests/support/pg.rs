//! A real PostgreSQL for the cluster tests: one server per test binary ([`shared`]), started
//! from Debian's binaries into a temporary directory on a free loopback port, one database per
//! test ([`database`]); a test that stops the store runs its own ([`PgServer::start`]).
//!
//! The server refuses to run as root, so as root its directory belongs to `postgres` and its
//! commands run through `runuser`. A watchdog shell stops the server when the test process is
//! gone, even after a panic or a SIGKILL; [`PgServer`]'s `Drop` stops it at once.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running PostgreSQL server.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
    /// More `-c` settings for `postgres`.
    extra: String,
}

/// The files of a server with `ssl = on`: its certificate and key, the CA its clients'
/// certificates must chain to, and `pg_hba.conf` (PEM and text).
pub struct TlsFiles<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub client_ca: &'a str,
    pub hba: &'a str,
}

/// The server of this test binary, started at first use.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// A fresh database on the shared server; its `postgresql://` URL.
pub async fn database(name: &str) -> String {
    shared().database(name).await
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: \
             install the `postgresql` package (apt-get install postgresql) to run the cluster tests"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PgServer {
    /// initdb into a new temporary directory and start on a free port (retrying on a clash).
    pub fn start() -> PgServer {
        PgServer::init().boot()
    }

    /// A server with `ssl = on` and `tls`'s files (the key owned by the server's user, 0600).
    pub fn start_tls(tls: &TlsFiles<'_>) -> PgServer {
        let mut server = PgServer::init();
        let data = server.data();
        for (name, text) in [
            ("server.crt", tls.cert),
            ("server.key", tls.key),
            ("client-ca.crt", tls.client_ca),
            ("pg_hba.conf", tls.hba),
        ] {
            std::fs::write(data.join(name), text).expect("write a TLS file");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod the key");
        if server.root {
            run(Command::new("chown").args(["-R", "postgres:"]).arg(&data));
        }
        server.extra =
            " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=client-ca.crt"
                .into();
        server.boot()
    }

    /// initdb into a new temporary directory, not started.
    fn init() -> PgServer {
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("dtc-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if root {
            run(Command::new("chown").args(["-R", "postgres:"]).arg(&dir));
        }
        let server = PgServer {
            port: 0,
            dir,
            bin: bin_dir(),
            root,
            extra: String::new(),
        };
        let data = server.data();
        server.run_pg("initdb", |c| {
            c.args(["-A", "trust", "-U", "postgres", "-N", "-D"])
                .arg(&data);
        });
        server.watchdog();
        server
    }

    /// Starts on a free port (retrying on a clash).
    fn boot(mut self) -> PgServer {
        for _ in 0..5 {
            self.port = free_port();
            if self.try_start() {
                return self;
            }
        }
        panic!("PostgreSQL did not start; see {}/log", self.dir.display());
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run_pg(&self, tool: &str, args: impl FnOnce(&mut Command)) -> bool {
        let mut c = self.command(tool);
        args(&mut c);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    fn try_start(&self) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let (data, log) = (self.data(), self.dir.join("log"));
        self.run_pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).arg("-l").arg(&log);
            c.args(["-o", &opts, "-w", "-t", "30", "start"]);
        })
    }

    /// Starts the server again on its port, after [`PgServer::stop`].
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart on port {}",
            self.port
        );
    }

    /// Stops the server at once (in-flight queries fail).
    pub fn stop(&self) {
        let data = self.data();
        self.run_pg("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"]);
        });
    }

    /// Stops the server and removes its files once this process is gone.
    // The watchdog must outlive this process, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let stop = format!(
            "{} {}/pg_ctl -D {} -m immediate stop",
            if self.root {
                "runuser -u postgres --"
            } else {
                ""
            },
            self.bin.display(),
            self.data().display()
        );
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {}",
            std::process::id(),
            self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
    }

    /// The URL of database `name` (not created).
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The unix-socket connection string of database `name`, for the tests' own SQL (it works
    /// whatever `pg_hba.conf` says of TCP).
    fn socket(&self, name: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={name}",
            self.dir.display(),
            self.port
        )
    }

    /// Creates database `name`; its URL.
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) =
            tokio_postgres::connect(&self.socket("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        self.url(name)
    }

    /// The single number `sql` yields on database `name`.
    pub async fn count(&self, name: &str, sql: &str) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.socket(name), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
            .query_one(sql, &[])
            .await
            .expect("test SQL runs")
            .get(0)
    }

    /// Runs `sql` on database `name`.
    pub async fn exec(&self, name: &str, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.socket(name), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect("test SQL runs");
    }
}

fn run(c: &mut Command) {
    let status = c.status().expect("run a setup command");
    assert!(status.success(), "{c:?} failed");
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
