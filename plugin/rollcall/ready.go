package rollcall

// Ready implements ready.Readiness: ready once the first list of etcd is in
// the index, so a fresh server never reports ready while it would answer
// NXDOMAIN for names that exist.
func (rc *Rollcall) Ready() bool { return rc.ix.isLoaded() }
