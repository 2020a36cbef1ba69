#!/usr/bin/env bash
# Make sure the services the tests talk to are installed and running:
# Mosquitto (1883), Redis (6379), PostgreSQL (5432) and Debian's chromium; poppler-utils
# and a Chinese TrueType font for the bulletin tests (docs/reports.md).
# As root, missing ones are installed with apt-get and started; otherwise this
# prints exactly what to install and fails.
set -u

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

have mosquitto || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto mosquitto-clients)
have mosquitto_pub || need_pkgs+=(mosquitto-clients)
have redis-server || need_pkgs+=(redis-server)
have redis-cli || need_pkgs+=(redis-tools)  # redis-cli --cluster create (tests/servicekit.py RedisCluster)
have curl || need_pkgs+=(curl)  # the README's parts section (tests/test_parts.py runs it)
{ have pg_ctlcluster && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || need_pkgs+=(postgresql)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)  # also draws the bulletins' charts (Kaleido)
# The remote-review tests generate a real test-pattern HLS stream (docs/review.md).
have ffmpeg || need_pkgs+=(ffmpeg)
# Chinese glyphs for the screenshots the browser tests save (the DOM checks do not need them),
# and the font bulletin PDFs embed (TrueType: fpdf2 embeds it as a subset).
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_pkgs+=(fonts-wqy-microhei)
# The bulletin tests read the PDFs back: pdftotext, pdftoppm, pdfimages, pdffonts.
have pdftoppm || need_pkgs+=(poppler-utils)
# The broker-edge tests: a test CA (openssl) and a 3-node clustered broker (nats-server,
# tests/ingest/test_broker_cluster.py; started on spare ports by the test itself).
have openssl || need_pkgs+=(openssl)
have nats-server || [ -x /usr/sbin/nats-server ] || need_pkgs+=(nats-server)
have gdal-config >/dev/null 2>&1 || true  # geopandas uses pyogrio's bundled GDAL: nothing to install

if [ ${#need_pkgs[@]} -gt 0 ]; then
  # De-duplicate.
  mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null || {
      echo "apt-get install ${need_pkgs[*]} failed" >&2; exit 1; }
  else
    echo "Missing: ${need_pkgs[*]}. Install them with:" >&2
    echo "  sudo apt-get install ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

start_failed=()
if ! port_open 1883; then
  echo "starting mosquitto on 127.0.0.1:1883"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || start_failed+=(mosquitto)
  else
    mosquitto -d -p 1883 || start_failed+=(mosquitto)
  fi
fi
if ! port_open 6379; then
  echo "starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/anjian-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/anjian-redis --logfile /tmp/anjian-redis/redis.log || start_failed+=(redis)
fi
if ! port_open 5432; then
  echo "starting postgresql on 127.0.0.1:5432"
  if have pg_ctlcluster; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -z "$ver" ]; then
      ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
      pg_createcluster "$ver" main >/dev/null || true
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || start_failed+=(postgresql)
  else
    start_failed+=(postgresql)
  fi
fi

for i in $(seq 1 50); do
  port_open 1883 && port_open 6379 && port_open 5432 && break
  sleep 0.2
done

# The tests connect to PostgreSQL as "postgres" over TCP without a password
# (ANJIAN_TEST_PG_URL overrides). Check that it works, and say how if not.
if [ -z "${ANJIAN_TEST_PG_URL:-}" ] && have psql; then
  if ! psql "postgresql://postgres@127.0.0.1:5432/postgres" -Atc 'select 1' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && have su; then
      # A fresh Debian cluster wants a password on TCP: allow local trust for the test user.
      hba=$(su postgres -c "psql -Atc 'show hba_file'" 2>/dev/null)
      if [ -n "$hba" ] && ! grep -q '^# anjian-tests' "$hba"; then
        sed -i '1i # anjian-tests\nhost all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
      fi
    fi
    psql "postgresql://postgres@127.0.0.1:5432/postgres" -Atc 'select 1' >/dev/null 2>&1 || {
      echo "PostgreSQL on 127.0.0.1:5432 does not accept user postgres without a password;" >&2
      echo "set ANJIAN_TEST_PG_URL=postgresql+psycopg://USER:PASS@127.0.0.1:5432/DB" >&2; exit 1; }
  fi
fi

if [ ${#start_failed[@]} -gt 0 ]; then
  echo "could not start: ${start_failed[*]}" >&2
  exit 1
fi
echo "services ready: mosquitto :1883, redis :6379, postgresql :5432, chromium $(/usr/bin/chromium --version 2>/dev/null | head -1)"
