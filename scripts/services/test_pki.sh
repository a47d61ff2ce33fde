# Sourced by the service scripts: a throwaway PKI for a test server's TLS listener.
#   make_test_pki DIR   writes, once, with openssl:
#     ca.pem / ca.key          a CA (10 years)
#     server.pem / server.key  the server's certificate for localhost and 127.0.0.1
#     client.pem / client.key  a client certificate (CN=hekate-test-client)
# Keys are unencrypted PKCS#8. The tests read ca.pem and the client pair.

# One certificate signed by the CA in $1: _test_pki_sign DIR NAME SUBJECT EXTENSIONS
_test_pki_sign() {
  openssl req -new -newkey rsa:2048 -nodes -subj "$3" -keyout "$1/$2.key" \
    -out "$1/$2.csr" 2>/dev/null
  openssl x509 -req -in "$1/$2.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile <(printf '%s\n' "$4") \
    -out "$1/$2.pem" 2>/dev/null
  rm -f "$1/$2.csr"
}

make_test_pki() {
  local dir=$1
  [ -f "$dir/client.pem" ] && return 0
  if ! command -v openssl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
      --no-install-recommends openssl >/dev/null
  fi
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hekate test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  _test_pki_sign "$dir" server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
  _test_pki_sign "$dir" client "/CN=hekate-test-client" "extendedKeyUsage=clientAuth"
  chmod 0644 "$dir"/*.pem "$dir/client.key"
  chmod 0600 "$dir/ca.key" "$dir/server.key"
}
