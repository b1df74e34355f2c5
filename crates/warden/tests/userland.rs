//! A worker's userland is one an agent can use: the commands agents reach for run inside a `host`-release
//! worker, HTTPS works against the host's CA store, `date` shows the configured timezone — while the
//! host's secrets stay invisible.
//!
//! The CA is added to the host's store only inside a private mount namespace of this test (a bind over
//! `ca-certificates.crt`), never to the machine's real store. Only the `host` release runs here: the
//! `debian` release (debootstrap minbase) has none of these tools unless a user installs them.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

use common::warden_bin;

/// Run inside `unshare --mount`: a throwaway CA and a TLS server on 127.0.0.1 (the worker shares this
/// network namespace), the CA appended to the host bundle by a private bind, then the worker.
const OUTER: &str = r#"
set -eu
mount --make-rprivate /
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=warden-test-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext.cnf
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out srv.crt 2>/dev/null
cat /etc/ssl/certs/ca-certificates.crt ca.crt > bundle.crt
mount --bind bundle.crt /etc/ssl/certs/ca-certificates.crt
echo 'hello over tls' > index.html
/usr/bin/python3 -c '
import http.server, ssl, sys
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("srv.crt", "srv.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open("port", "w").write(str(srv.server_address[1]))
srv.serve_forever()
' >/dev/null 2>&1 &
server=$!
while [ ! -s port ]; do sleep 0.05; done
PORT=$(cat port)
set +e
"$WARDEN" --state-dir "$STATE" run --network shared --env PORT="$PORT" --env STATE="$STATE" -- /bin/sh -c "$INNER"
code=$?
kill $server
exit $code
"#;

/// Inside the worker. Each line prints `ok NAME` or `FAIL NAME`.
const INNER: &str = r#"
t() { name=$1; shift; if "$@" >/tmp/out 2>&1; then echo "ok $name"; else echo "FAIL $name: $(head -c 300 /tmp/out)"; fi; }
t awk sh -c 'echo "a b" | awk "{print \$2}" | grep -qx b'
t sed sh -c 'echo abc | sed s/b/x/ | grep -qx axc'
t grep sh -c 'printf "x\ny\n" | grep -c y | grep -qx 1'
t find sh -c 'find /usr/bin -maxdepth 1 -name sh | grep -q sh'
t which which git
t editor sh -c 'test -e "$(readlink -f /usr/bin/editor)"'
t pager sh -c 'test -e "$(readlink -f /usr/bin/pager)"'
t git sh -c 'cd /tmp && git init -q r && cd r && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m m && git log --oneline | grep -q m'
t python3 python3 -c 'import ssl, json; print(json.dumps({"ok": 1}))'
t node node -e 'process.exit(require("https") ? 0 : 1)'
t curl-https sh -c 'curl -sS --max-time 10 "https://127.0.0.1:$PORT/index.html" | grep -qx "hello over tls"'
t python-https python3 -c "import urllib.request, os; assert urllib.request.urlopen('https://127.0.0.1:%s/index.html' % os.environ['PORT'], timeout=10).read() == b'hello over tls\n'"
t node-https env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt node -e "require('https').get('https://127.0.0.1:'+process.env.PORT+'/index.html', r => { let b=''; r.on('data', d => b += d); r.on('end', () => process.exit(b === 'hello over tls\n' ? 0 : 1)); }).on('error', e => { console.error(e.message); process.exit(1); })"
t timezone sh -c 'test "$(date +%Z)" = JST && test "$(date +%z)" = +0900'
t locale sh -c 'grep -qx LANG=C.UTF-8 /etc/default/locale'
t no-shadow sh -c '! test -e /etc/shadow'
t no-ssl-private sh -c '! test -e /etc/ssl/private'
t no-ssh-keys sh -c '! ls /etc/ssh/ssh_host_*key /root/.ssh 2>/dev/null | grep -q .'
t no-state sh -c '! test -e "$STATE"'
t certs-read-only sh -c '! touch /etc/ssl/certs/x 2>/dev/null'
"#;

#[test]
fn a_host_release_worker_has_a_usable_userland_and_no_host_secrets() {
    // Root tests of every worktree take turns.
    let _serial = warden_testkit::root_test("userland").expect("root_test never skips");
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = common::output_within(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c", OUTER])
            .env("WORK", work.path())
            .env("STATE", state.path())
            .env("WARDEN", warden_bin())
            .env("INNER", INNER)
            .env("WARDEN_TIMEZONE", "Asia/Tokyo"),
        common::WARDEN_LIMIT,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let failed: Vec<&str> = out.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        o.status.success() && failed.is_empty() && out.lines().count() == 20,
        "status {:?}\n{out}\nstderr: {err}",
        o.status
    );
    // The machine's own store is untouched: the CA was only ever in the test's mount namespace.
    let real = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    let ca = std::fs::read_to_string(work.path().join("ca.crt")).unwrap();
    assert!(
        !real.contains(ca.trim()),
        "the test CA leaked into the host store"
    );
}
