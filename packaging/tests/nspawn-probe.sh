#!/bin/bash
# Runs inside a booted systemd container (see systemd.sh): installs the .deb and exercises the
# service for real. Writes its log to /probe/log and PASS or FAIL to /probe/result, then
# powers the container off.
exec >/probe/log 2>&1
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin

finish() { echo "$1" >/probe/result; systemctl poweroff --no-block; exit 0; }
fail() { echo "FAIL: $*"; journalctl --no-pager -n 60 -u jobstore -u jobstore.socket -u jobstore-litestream -u 'jobstore-worker@*' || true; finish FAIL; }
ok() { echo "ok: $*"; }
field() { grep -o "\"$1\": *[^,}]*" | head -n1 | cut -d: -f2- | tr -d '" '; }
api() { curl -sS --max-time 10 "$@"; }
wait_for() { # wait_for SECONDS CMD...: retry until CMD succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}

dpkg -i /probe/jobstore.deb || fail "dpkg -i"
ok "installed: $(dpkg-query -W -f='${Package} ${Version}' jobstore)"
systemctl is-enabled jobstore.service | grep -qx enabled || fail "jobstore.service is not enabled by the package"
systemctl is-active --quiet jobstore.service || fail "jobstore.service was not started by the package"
ok "enabled and started on install"
[ "$(systemctl show -p Type --value jobstore.service)" = notify ] || fail "not Type=notify"
# Type=notify: systemctl start returns once READY=1 arrived, so the first request must answer.
systemctl restart jobstore.service || fail "start"
systemctl is-active --quiet jobstore.service || fail "not active after start"
[ "$(api localhost:8080/healthz)" = ok ] || fail "healthz did not answer right after READY"
ok "active after READY=1 and answering /healthz"

job=$(api -X POST localhost:8080/v1/jobs -d '{"kind": "export", "payload": {"n": 1}}')
id=$(echo "$job" | field id)
[ -n "$id" ] || fail "create: $job"
claim=$(api -X POST localhost:8080/v1/claim -d '{"worker": "probe", "queues": ["default"]}')
token=$(echo "$claim" | field lease_token)
[ -n "$token" ] || fail "claim: $claim"
done_job=$(api -X POST "localhost:8080/v1/jobs/$id/complete" -d "{\"worker\": \"probe\", \"lease_token\": $token, \"result\": {\"ok\": true}}")
[ "$(echo "$done_job" | field state)" = succeeded ] || fail "complete: $done_job"
ok "create, claim, complete job $id"

[ -f /var/lib/jobstore/jobstore.db ] || fail "no database under /var/lib/jobstore"
[ "$(/usr/bin/jobstore --db /var/lib/jobstore/jobstore.db jobs list --json | field state)" = succeeded ] || fail "jobstore jobs list does not see the job"
ok "database in /var/lib/jobstore ($(stat -c %s /var/lib/jobstore/jobstore.db) bytes)"
journalctl --no-pager -u jobstore.service | grep -q "listening on http://127.0.0.1:8080" || fail "no log line in the journal"
ok "logs in the journal"

systemctl restart jobstore.service || fail "restart"
[ "$(api "localhost:8080/v1/jobs/$id" | field state)" = succeeded ] || fail "job lost across restart"
ok "job $id survives systemctl restart"

systemctl stop jobstore.service
[ "$(systemctl show -p Result --value jobstore.service)" = success ] || fail "stop: Result=$(systemctl show -p Result --value jobstore.service)"
[ "$(systemctl show -p ExecMainStatus --value jobstore.service)" = 0 ] || fail "stop: exit status $(systemctl show -p ExecMainStatus --value jobstore.service)"
[ "$(systemctl show -p ExecMainCode --value jobstore.service)" = 1 ] || fail "stop: the daemon did not exit by itself (killed?)"
ok "systemctl stop: exit 0, no SIGKILL"

systemctl start jobstore.service
pid=$(systemctl show -p MainPID --value jobstore.service)
kill -9 "$pid"
wait_for 20 sh -c '[ "$(systemctl show -p NRestarts --value jobstore.service)" -ge 1 ] && systemctl is-active --quiet jobstore.service' || fail "not restarted after SIGKILL"
[ "$(api "localhost:8080/v1/jobs/$id" | field state)" = succeeded ] || fail "job lost after SIGKILL"
ok "restarted by systemd after SIGKILL (pid $pid → $(systemctl show -p MainPID --value jobstore.service))"

systemctl stop jobstore.service
# This probe started the service more often in ten seconds than systemd's start limit allows.
systemctl reset-failed jobstore.service
systemctl start jobstore.socket || fail "socket start"
systemctl is-active --quiet jobstore.service && fail "service active before the first request"
[ "$(api localhost:8080/healthz)" = ok ] || fail "socket-activated first request"
systemctl is-active --quiet jobstore.service || fail "socket did not start the service"
journalctl --no-pager -u jobstore.service | grep -q "using the socket passed by systemd" || fail "service did not use the passed socket"
ok "socket activation serves its first request"

cat >/etc/jobstore/worker-probe.toml <<'TOML'
url = "http://127.0.0.1:8080"
queues = ["probe"]
[kinds.echo]
command = "/bin/sh -c 'read payload; echo \"got $payload\"; echo \"##jobstore result {\\\"worker\\\": \\\"ok\\\"}\"'"
TOML
systemctl start jobstore-worker@probe.service || fail "worker start"
wjob=$(api -X POST localhost:8080/v1/jobs -d '{"kind": "echo", "queue": "probe", "payload": {"x": 1}}' | field id)
wait_for 30 sh -c "curl -s localhost:8080/v1/jobs/$wjob | grep -q '\"state\":\"succeeded\"'" || fail "worker did not run job $wjob: $(api localhost:8080/v1/jobs/$wjob)"
api "localhost:8080/v1/jobs/$wjob/logs" | grep -q 'got {"x":1}' || fail "worker log missing"
ok "jobstore-worker@probe ran job $wjob end to end"
systemctl stop jobstore-worker@probe.service jobstore.socket jobstore.service

# Litestream: installed disabled; once enabled it starts and stops with the daemon as the same
# user, the daemon leaves checkpoints to it, a stop right after a write keeps that write on the
# replica, and jobstore restore brings a lost database back from it.
[ "$(systemctl is-enabled jobstore-litestream.service 2>&1)" = disabled ] || fail "jobstore-litestream.service is not installed disabled: $(systemctl is-enabled jobstore-litestream.service 2>&1)"
[ -f /etc/jobstore/litestream.yml ] || fail "no /etc/jobstore/litestream.yml"
ok "jobstore-litestream.service and /etc/jobstore/litestream.yml installed, not enabled"
install -m 755 /probe/litestream /usr/bin/litestream
sed -i 's/^# replication = "none"$/replication = "litestream"/' /etc/jobstore/config.toml
grep -qx 'replication = "litestream"' /etc/jobstore/config.toml || fail "no replication line to set in config.toml"
systemctl enable jobstore-litestream.service || fail "enable jobstore-litestream"
systemctl reset-failed jobstore.service
systemctl start jobstore.service || fail "start with Litestream"
systemctl is-active --quiet jobstore-litestream.service || fail "Litestream did not start with the daemon"
journalctl --no-pager -u jobstore.service | grep -q "replication litestream" || fail "the daemon does not run with replication litestream"
for n in 1 2 3; do api -X POST localhost:8080/v1/jobs -d "{\"kind\": \"replicated\", \"payload\": {\"n\": $n}}" >/dev/null; done
# Once Litestream has taken its first snapshot, a write and at once a stop: the daemon stops
# first, then Litestream, whose final sync must carry that write.
wait_for 20 sh -c 'ls /var/lib/jobstore-replica/ltx/0/*.ltx' >/dev/null 2>&1 || fail "Litestream wrote nothing to the replica: $(journalctl --no-pager -u jobstore-litestream | tail -n 20)"
last=$(api -X POST localhost:8080/v1/jobs -d '{"kind": "last-before-stop"}' | field id)
[ -n "$last" ] || fail "create under Litestream"
systemctl stop jobstore.service
systemctl is-active --quiet jobstore-litestream.service && fail "Litestream still runs after the daemon stopped"
[ "$(systemctl show -p Result --value jobstore-litestream.service)" = success ] || fail "Litestream stop: Result=$(systemctl show -p Result --value jobstore-litestream.service)"
journalctl --no-pager -u jobstore-litestream.service | grep -qi "permission denied" && fail "Litestream was refused a file"
state=/var/lib/private/jobstore
[ "$(stat -c %u "$state/.jobstore.db-litestream")" = "$(stat -c %u "$state/jobstore.db")" ] || fail "Litestream and the daemon ran as different users"
ok "Litestream started and stopped with the daemon, as its user; replica in /var/lib/jobstore-replica"
rm -rf "$state/jobstore.db" "$state/jobstore.db-wal" "$state/jobstore.db-shm" "$state/.jobstore.db-litestream"
restored=$(/usr/bin/jobstore --db /var/lib/jobstore/jobstore.db restore 2>&1) || fail "jobstore restore: $restored"
echo "$restored" | grep -qx "check: ok" || fail "restore did not check the file: $restored"
systemctl reset-failed jobstore.service
systemctl start jobstore.service || fail "start on the restored file"
[ "$(api "localhost:8080/v1/jobs/$last" | field kind)" = last-before-stop ] || fail "the last write before the stop is not in the restored file"
[ "$(api "localhost:8080/v1/jobs/$id" | field state)" = succeeded ] || fail "job $id lost in the restore"
systemctl is-active --quiet jobstore-litestream.service || fail "Litestream did not start again"
ok "database lost and restored with jobstore restore: job $last, written just before the stop, is back"
systemctl stop jobstore.service
systemctl disable jobstore-litestream.service
sed -i 's/^replication = "litestream"$/# replication = "none"/' /etc/jobstore/config.toml

# Tokens handed over as a systemd credential.
token=$(/usr/bin/jobstore token add --tokens /etc/jobstore/tokens --name probe --tenant acme --scopes read,write 2>/dev/null)
chmod 600 /etc/jobstore/tokens
mkdir -p /etc/systemd/system/jobstore.service.d
printf '[Service]\nLoadCredential=tokens:/etc/jobstore/tokens\n' >/etc/systemd/system/jobstore.service.d/tokens.conf
systemctl daemon-reload
systemctl reset-failed jobstore.service
systemctl start jobstore.service || fail "start with the tokens credential"
[ "$(curl -s -o /dev/null -w '%{http_code}' localhost:8080/v1/jobs)" = 401 ] || fail "no token was not refused"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" localhost:8080/v1/jobs)" = 200 ] || fail "the credential's token was not accepted"
ok "tokens from LoadCredential= (\$CREDENTIALS_DIRECTORY): 401 without, 200 with"
systemctl stop jobstore.service

# HTTPS, the pair handed over as credentials and named in the config.
/usr/bin/jobstore tls self-signed --out /etc/jobstore/tls 2>/dev/null || fail "tls self-signed"
[ "$(stat -c %a /etc/jobstore/tls/key.pem)" = 600 ] || fail "key.pem mode $(stat -c %a /etc/jobstore/tls/key.pem)"
printf '[Service]\nLoadCredential=tls.crt:/etc/jobstore/tls/cert.pem\nLoadCredential=tls.key:/etc/jobstore/tls/key.pem\n' >/etc/systemd/system/jobstore.service.d/tls.conf
sed -i '1i tls_cert = "$CREDENTIALS_DIRECTORY/tls.crt"\ntls_key = "$CREDENTIALS_DIRECTORY/tls.key"' /etc/jobstore/config.toml
systemctl daemon-reload
systemctl reset-failed jobstore.service
systemctl start jobstore.service || fail "start with the TLS credentials"
https() { curl -sS --max-time 10 --cacert "$1" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" https://localhost:8080/v1/jobs; }
[ "$(https /etc/jobstore/tls/cert.pem)" = 200 ] || fail "HTTPS with the credential pair"
journalctl --no-pager -u jobstore.service | grep -q "listening on https://127.0.0.1:8080" || fail "no https listening line"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" http://localhost:8080/v1/jobs)" = 400 ] || fail "plain HTTP on the HTTPS port was not refused"
ok "HTTPS from LoadCredential= and \$CREDENTIALS_DIRECTORY in the config; plain HTTP answered 400"
systemctl reload jobstore.service
wait_for 10 sh -c 'journalctl --no-pager -u jobstore.service | grep -q "are unchanged"' || fail "reload did not report the unchanged copies"
# A new pair: served after a restart (credentials are copied when the service starts).
mkdir -p /probe/old && cp /etc/jobstore/tls/cert.pem /probe/old/cert.pem
rm /etc/jobstore/tls/cert.pem /etc/jobstore/tls/key.pem
/usr/bin/jobstore tls self-signed --out /etc/jobstore/tls 2>/dev/null || fail "second tls self-signed"
systemctl restart jobstore.service || fail "restart with the new pair"
[ "$(https /etc/jobstore/tls/cert.pem)" = 200 ] || fail "HTTPS with the new pair"
[ "$(https /probe/old/cert.pem 2>/dev/null)" != 200 ] || fail "the old certificate is still served"
ok "a new pair is served after systemctl restart"
systemctl stop jobstore.service

finish PASS
