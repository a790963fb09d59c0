//! Convoy's public-key infrastructure: the fleet CA, the control plane's
//! server certificate, agent client certificates (SAN URI
//! `spiffe://<fleet>/host/<name>`), join tokens, revocation and renewal
//! timing. Pure functions over bytes and an injected clock; the daemons do
//! the I/O.
