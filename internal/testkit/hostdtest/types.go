package hostdtest

import (
	"math/big"
	"time"
)

// Version is the hostd release whose JSON the server writes.
type Version string

const (
	// V2_10_2 follows SiaFoundation/hostd v2.10.2 (host/metrics/types.go,
	// api/types.go): data.rhp and data.syncer, storage read/write bytes.
	V2_10_2 Version = "v2.10.2"
	// V2_5_0 follows hostd v2.5.0: no data.syncer, and RHP4 over QUIC
	// not counted in data.rhp (hostd 2.6.0 added both).
	V2_5_0 Version = "v2.5.0"
)

// Totals is what a test sets for one 5-minute period: hostd's running
// totals at its end. Amounts in hastings.
type Totals struct {
	Start           time.Time
	RHP, Syncer     Data
	EarnedEgress    *big.Int
	PotentialEgress *big.Int
	EgressPrice     *big.Int // hastings per byte
}

// Data is hostd's metrics.Data (v2.6.0 on; RHPData before).
type Data struct {
	Ingress uint64 `json:"ingress"`
	Egress  uint64 `json:"egress"`
}

// currency writes an amount as hostd's types.Currency does: a quoted
// decimal string of hastings.
type currency struct{ v *big.Int }

func (c currency) MarshalText() ([]byte, error) {
	if c.v == nil {
		return []byte("0"), nil
	}
	return []byte(c.v.String()), nil
}

// revenue is hostd's metrics.Revenue.
type revenue struct {
	RPC           currency `json:"rpc"`
	Storage       currency `json:"storage"`
	Ingress       currency `json:"ingress"`
	Egress        currency `json:"egress"`
	RegistryRead  currency `json:"registryRead"`
	RegistryWrite currency `json:"registryWrite"`
}

// metrics is hostd's metrics.Metrics at v2.10.2; Data is one of the two
// versions' shapes.
type metrics struct {
	Accounts struct {
		Active  uint64   `json:"active"`
		Balance currency `json:"balance"`
	} `json:"accounts"`
	Revenue struct {
		Potential revenue `json:"potential"`
		Earned    revenue `json:"earned"`
	} `json:"revenue"`
	Pricing struct {
		ContractPrice        currency `json:"contractPrice"`
		IngressPrice         currency `json:"ingressPrice"`
		EgressPrice          currency `json:"egressPrice"`
		BaseRPCPrice         currency `json:"baseRPCPrice"`
		SectorAccessPrice    currency `json:"sectorAccessPrice"`
		StoragePrice         currency `json:"storagePrice"`
		CollateralMultiplier float64  `json:"collateralMultiplier"`
	} `json:"pricing"`
	Contracts struct {
		Active           uint64   `json:"active"`
		Rejected         uint64   `json:"rejected"`
		Failed           uint64   `json:"failed"`
		Renewed          uint64   `json:"renewed"`
		Successful       uint64   `json:"successful"`
		LockedCollateral currency `json:"lockedCollateral"`
		RiskedCollateral currency `json:"riskedCollateral"`
	} `json:"contracts"`
	Storage  map[string]uint64 `json:"storage"`
	Registry struct {
		Entries    uint64 `json:"entries"`
		MaxEntries uint64 `json:"maxEntries"`
		Reads      uint64 `json:"reads"`
		Writes     uint64 `json:"writes"`
	} `json:"registry"`
	Data   any `json:"data"`
	Wallet struct {
		Balance         currency `json:"balance"`
		ImmatureBalance currency `json:"immatureBalance"`
	} `json:"wallet"`
	Timestamp time.Time `json:"timestamp"`
}

// metrics shapes t as version's GET /api/metrics/5m entry stamped at.
func (v Version) metrics(t Totals, at time.Time) metrics {
	var m metrics
	m.Timestamp = at
	m.Revenue.Earned.Egress = currency{t.EarnedEgress}
	m.Revenue.Potential.Egress = currency{t.PotentialEgress}
	m.Pricing.EgressPrice = currency{t.EgressPrice}
	m.Pricing.CollateralMultiplier = 2
	storage := []string{"totalSectors", "physicalSectors", "lostSectors", "contractSectors", "tempSectors", "reads", "writes", "sectorCacheHits", "sectorCacheMisses"}
	if v == V2_5_0 {
		m.Data = struct {
			RHP Data `json:"rhp"`
		}{t.RHP}
	} else {
		storage = append(storage, "readBytes", "writeBytes")
		m.Data = struct {
			RHP    Data `json:"rhp"`
			Syncer Data `json:"syncer"`
		}{t.RHP, t.Syncer}
	}
	m.Storage = make(map[string]uint64, len(storage))
	for _, k := range storage {
		m.Storage[k] = 0
	}
	return m
}

// Peer is hostd's api.Peer (v2.0.0 to v2.10.2).
type Peer struct {
	Address        string        `json:"address"`
	Inbound        bool          `json:"inbound"`
	Version        string        `json:"version"`
	FirstSeen      time.Time     `json:"firstSeen,omitempty"`
	ConnectedSince time.Time     `json:"connectedSince,omitempty"`
	SyncedBlocks   uint64        `json:"syncedBlocks,omitempty"`
	SyncDuration   time.Duration `json:"syncDuration,omitempty"`
}

// State is the part of hostd's api.State collector may read.
type State struct {
	Version   string    `json:"version"`
	Commit    string    `json:"commit"`
	OS        string    `json:"os"`
	StartTime time.Time `json:"startTime"`
}
