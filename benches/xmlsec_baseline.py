#!/usr/bin/env python3
"""The baseline for `cargo bench --bench verify`: python-xmlsec (libxmlsec1 +
OpenSSL) verifying the same file in process, CPU time per verification.

  pip install xmlsec lxml
  python3 benches/xmlsec_baseline.py \
    tests/fixtures/bench/okta_10_attributes_rsa2048_sha256_xmlsec1.xml \
    tests/fixtures/independent/certs/okta_rsa2048.pem 3000

What it does per verification:
parse, find the assertion signature, register IDs, verify with the pinned key.

Like `examples/verify_loop.rs`, it also prints the fastest batch of 64 in a
row, the figure a shared machine disturbs least, so the two compare alike."""
import sys, time
from lxml import etree
import xmlsec
path, cert, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, 'rb').read()
key = xmlsec.Key.from_file(cert, xmlsec.constants.KeyDataFormatCertPem)
NS = {'ds': 'http://www.w3.org/2000/09/xmldsig#', 'saml2': 'urn:oasis:names:tc:SAML:2.0:assertion'}
def once():
    root = etree.fromstring(data)
    assertion = root.find('saml2:Assertion', NS)
    sig = assertion.find('ds:Signature', NS)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.register_id(assertion, 'ID')
    ctx.verify(sig)
once()
BATCH = 64
best = float('inf')
t = time.process_time()
done = 0
while done < n:
    batch = min(BATCH, n - done)
    b = time.perf_counter()
    for _ in range(batch): once()
    if batch == BATCH:
        best = min(best, time.perf_counter() - b)
    done += batch
dt = time.process_time() - t
each = best * 1e6 / BATCH
print(f"{n} verifications, {dt*1e6/n:.1f} us CPU each, {n/dt:.0f}/s; "
      f"fastest batch of {BATCH}: {each:.1f} us each ({1e6/each:.0f}/s)")
