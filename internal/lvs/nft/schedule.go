package nft

import (
	"tandem/internal/lvs"
)

// slots returns the slot table of s: the dest id each slot sends new flows
// to (ds sorted by address), as lvs.Slots builds it for every scheduler
// (the XDP data plane builds its DR tables there too, so both agree).
// A NAT table that is not hashed is walked by numgen; a hashed one, and
// every DR one, is indexed by jhash of the flow (schedule).
func slots(s *service, ds []dest) ([]uint32, error) {
	plain := make([]lvs.Dest, len(ds))
	for i, d := range ds {
		plain[i] = d.Dest
	}
	table, err := lvs.Slots(s.Service, plain)
	if err != nil || table == nil {
		return nil, err
	}
	out := make([]uint32, len(table))
	for i, j := range table {
		out[i] = ds[j].id
	}
	return out, nil
}
