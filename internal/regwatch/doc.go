// Package regwatch is the one way rollcall reads the registry and follows it:
// list a prefix at one revision, then watch it from the next revision, for as
// long as the reader runs (docs/DESIGN.md, "Serving and freshness"). The DNS
// plugin's loader runs a Watcher; the CLI reads with List. It knows nothing of
// what the keys mean: the reader decodes them in its callbacks.
//
// The rules a Watcher keeps:
//
//   - The base read is paged (List): pages of PageSize keys, the first at
//     etcd's current revision and the rest at that same revision, so they add
//     up to one consistent view without one response the size of the
//     registry.
//   - The watch starts at list revision + 1, requires a leader (a member cut
//     off from its cluster ends it rather than going quiet), and asks for
//     progress and created notifications.
//   - The revision handed to the reader is the list's, then the newest
//     ModRevision applied; only a progress notification moves it further (to
//     its header's revision), because a watch catching up gets its backlog in
//     parts headed with etcd's newest revision, not the part's. While the
//     watch has not delivered a revision etcd reported, the status is Behind.
//   - Every ProgressEvery, a read of etcd's revision beside the watch
//     confirms that the state is current (etcd sends no progress
//     notification to a watch whose start revision is still in the future)
//     and tells a stuck watch: one that stays short of the same reported
//     revision for longer than StaleAfter, as on a member whose raft hung
//     with its connections open, is given up.
//   - A lost or stuck watch is resumed from the revision after the last one
//     delivered, without listing again, whenever etcd still has it (a resumed
//     watch that the client's round robin puts back on the member it was
//     stuck on is given up at once, to go to the next member); only a
//     compaction past it (or an etcd whose history went back: restored,
//     replaced) makes the Watcher list again, after a random delay of up to
//     RelistJitter, so that readers finding the same compaction together do
//     not all list at once.
//   - Failures are retried with a jittered exponential backoff
//     (internal/backoff); etcd silent for longer than StaleAfter makes the
//     status Unreachable, and the reader keeps its last state meanwhile.
//
// The files:
//
//	watcher.go  Watcher, Config, Callbacks, Status: the list-then-watch loop, retries, staleness
//	watch.go    one watch: revisions delivered, behind, the freshness read, progress requests
//	list.go     List: the paged base read at one revision
//	lag.go      lag: telling a stuck watch from a busy one
package regwatch
