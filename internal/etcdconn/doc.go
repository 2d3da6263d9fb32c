// Package etcdconn turns the etcd settings shared by the plugin, the agent and
// the CLI (endpoints, optional mTLS, optional user) into a connected
// clientv3.Client, so that TLS and timeouts are configured one way everywhere.
//
// The files:
//
//	etcdconn.go   Config and New: endpoints, TLS, user, and the client's timeouts and logging
//	reconnect.go  the pace of reconnecting to an endpoint that went away
//	diagnose.go   Diagnose: what is wrong when etcd cannot be reached (a TLS mistake, a plain URL)
//	denied.go     IsDenied: etcd refused an operation for lack of rights (RBAC, unknown user)
package etcdconn
