package daemon

import (
	"context"

	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/peers"
)

// peerService samples hostd's syncer peers into the database every
// minute, in a goroutine of its own: hostd slow or down costs its samples,
// never a flush. It is there only with HOSTD_API_PASSWORD set.
func (c *collector) peerService() Service {
	var sampler *peers.Sampler
	return Service{
		Name: "hostd syncer peers",
		Start: func(context.Context) error {
			api, err := hostd.New(c.cfg.HostdURL, c.cfg.HostdPassword)
			if err != nil {
				return config.Error{Err: err}
			}
			sampler = peers.New(peers.Config{Hostd: api, Store: c.store, Log: c.log.With("component", "peers")})
			return nil
		},
		Run: func(ctx context.Context) error { return sampler.Run(ctx) },
	}
}
