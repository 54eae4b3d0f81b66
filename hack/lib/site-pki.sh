# shellcheck shell=bash
# Keys and certificates signed by a test-bed CA (source it; it defines functions only):
# the site's own CA (hack/site.sh, hack/site-vm-node.sh) and the chart's peer CA
# (hack/site-chart.sh) issue theirs the same way.

# pki_key FILE: a P-256 key, generated in milliseconds where RSA takes seconds on a loaded
# 2-core host.
pki_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# pki_issue CA_DIR OUT_DIR NAME SUBJECT EXTENSIONS: OUT_DIR/NAME.{key,csr,ext,crt}, a new
# key and its certificate for SUBJECT with EXTENSIONS (openssl extension lines), valid 30
# days, signed by CA_DIR/ca.{crt,key}; the CA's serial is kept in OUT_DIR/ca.srl.
pki_issue() {
  local ca=$1 d=$2 name=$3
  pki_key "$d/$name.key"
  openssl req -new -key "$d/$name.key" -subj "$4" -out "$d/$name.csr" 2>/dev/null
  printf '%s\n' "$5" >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
    -CAserial "$d/ca.srl" -days 30 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
}
