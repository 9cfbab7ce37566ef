// Package cluster is the membership state machine of a mode: cluster
// service: which members exist, which epoch they see, who leads, who may
// apply the view now, and what the server must start or stop next. It
// does no I/O: the server feeds it events (MemberStarted, MemberReported,
// MemberDied, Scale, Tick) and carries out Plan; a test drives it with a
// manual clock.
//
// The rules:
//
//   - Identity. Each member has an ordinal 0..size-1 that it keeps across
//     replacements (a server id, a volume name) and an incarnation drawn
//     from a per-cluster counter that never goes back: a replaced member
//     gets a new one, and events naming an old incarnation are refused
//     with ErrStale.
//   - Epoch. The view is the running, non-leaving members (ordinal,
//     incarnation, addresses), the leader and the dependencies' epochs and
//     ready counts. A change starts a countdown of Damper; changes during
//     it join it; when it ends the view is published with epoch+1 unless
//     it is the same as the published one (a change that came back, as
//     with Ochopod's hash). A fixed window, not a debounce, so a cluster
//     that never stops changing still publishes. A peer's Ready flag is as
//     of its epoch's publication; a change of readiness bumps the epoch
//     only when it moves the leader.
//   - Leader: the lowest-ordinal ready member (it reported configured) of
//     the published view; it is the epoch's, so the epoch fences it. It is
//     sticky: while the leader stays ready it keeps the lead, so a lower
//     ordinal that comes back (a replacement, fresh, without the data the
//     leader holds) does not take it over.
//   - Release. No member is released before MinReady members are up (they
//     report waiting or configured) and every dependency has its
//     min_ready ready members. With rollout: parallel all are then
//     released; with sequential a member is released once every
//     lower-ordinal member that is up has reported configured for the
//     epoch (one that is down does not hold the others back).
//   - Scale up. At bootstrap (nothing published yet) every ordinal starts
//     at once. After that one ordinal is added at a time, and the next only
//     when the cluster is settled: the view published, nothing starting or
//     leaving, and every member has reported configured for the epoch.
//   - Scale down. When settled, the highest ordinal is marked leaving: the
//     next epoch leaves it out of the peers (its own view has itself as
//     Self but not among Peers). Once every staying member has reported
//     configured for that epoch, Plan asks to stop it; its death removes
//     the ordinal. A leaving member stays leaving even if the size goes
//     back up: the ordinal returns later with a new incarnation.
//   - Replacement. A member that dies is started again at once, same
//     ordinal, new incarnation. A member that has been unhealthy (no report
//     since it started, or a failed one) for MemberTimeout is replaced:
//     Plan asks to remove the old container and start the new one.
//   - Placement. A start goes to the daemon its ordinal's volume lives on
//     when Spec.PinVolumes and that daemon is offered; otherwise to the
//     offered daemon with the fewest members of this cluster, ties broken
//     by name (Spread).
package cluster
