package etcdconn

import (
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// IsDenied reports whether etcd refused an operation for lack of rights:
// the user may not touch the key (RBAC), or etcd has no user of that name
// (with certificate auth, the certificate's CN). Retrying does not heal
// either, so callers say what to fix instead.
func IsDenied(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrUserNotFound)
}
