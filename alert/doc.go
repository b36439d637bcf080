// Package alert raises alerts on the traffic the collector counts: spikes
// of consensus (syncer) traffic, of the whole host and of each client, and
// the shares of a billing period's quotas used up.
//
// A Detector is one more consumer of the closed periods (agg.Consumer).
// It judges each step (a minute) against a baseline learned from the
// database: the median and MAD of the same hour of the day over the last
// days, read back by Learn once the daemon is ready (Load reads the rest
// at start), so that a restart neither forgets the baselines nor raises
// again an alert still firing. Each alert fires once
// and resolves once under a stable id; it is a warning in the journal, a
// row of the database's alerts table, an active alert in the metrics
// (Active, QuotaUse) and, through a Notifier such as Webhook, a JSON POST
// that a slow or failing receiver can never hold up counting with.
package alert
