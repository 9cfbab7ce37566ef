// Package clusterd runs the mode: cluster services of a node: for each, a
// loop that carries out what the membership state machine (package
// cluster) plans (members started on the daemons it chose, replaced,
// stopped), keeps the record in the store so that a restart takes the
// cluster back untouched, answers each member's long-poll with its view
// (its files rendered from it) and takes its reports, and relays an
// operator's process commands to a member's ganger-init.
//
// Members are containers launched to outlive Ganger (fleet.Request.Keep)
// under ganger-init, labelled ganger.cluster, ganger.ordinal and
// ganger.incarnation. Each gets a token good for its own incarnation only
// (an HMAC of the cluster's secret, which never leaves Ganger and its
// store): a replaced member's token stops working.
package clusterd
