package bfd

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hexUp is an Up packet with P set, mult 3, discriminators 1 and 2,
// intervals 300 ms / 300 ms / 50 ms, laid out by hand from RFC 5880
// section 4.1.
const hexUp = "20e00318" + "00000001" + "00000002" + "000493e0" + "000493e0" + "0000c350"

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		want *Packet
		drop DropReason
	}{
		{"up poll", hexUp, &Packet{State: Up, Poll: true, DetectMult: 3, MyDisc: 1, YourDisc: 2, DesiredMinTx: 300000, RequiredMinRx: 300000, RequiredMinEchoRx: 50000}, 0},
		{"down diag 1 final cpi demand", "215a0518" + "0000abcd" + "00000000" + "000f4240" + "00002710" + "00000000",
			&Packet{Diag: 1, State: Down, Final: true, CPI: true, Demand: true, DetectMult: 5, MyDisc: 0xabcd, DesiredMinTx: 1000000, RequiredMinRx: 10000}, 0},
		{"trailing bytes ignored", hexUp + "ffff", &Packet{State: Up, Poll: true, DetectMult: 3, MyDisc: 1, YourDisc: 2, DesiredMinTx: 300000, RequiredMinRx: 300000, RequiredMinEchoRx: 50000}, 0},
		{"simple password", "2044031d" + "00000001" + "00000000" + "000f4240" + "000f4240" + "00000000" + "010501" + "6162",
			&Packet{State: Down, Auth: true, DetectMult: 3, MyDisc: 1, DesiredMinTx: 1000000, RequiredMinRx: 1000000, AuthType: 1, AuthData: []byte{1, 'a', 'b'}}, 0},
		{"short", hexUp[:46], nil, DropShort},
		{"version 0", "00e30318" + hexUp[8:], nil, DropVersion},
		{"length below 24", "20e00317" + hexUp[8:], nil, DropLength},
		{"length 25 without auth", "20e00319" + hexUp[8:] + "00", nil, DropLength},
		{"length beyond payload", "20e0031a" + hexUp[8:], nil, DropShort},
		{"auth length 24 + 1", "2044031a" + hexUp[8:] + "0101", nil, DropAuthSection},
		{"auth length mismatch", "2044031c" + hexUp[8:] + "01050000", nil, DropAuthSection},
		{"detect mult 0", "20e00018" + hexUp[8:], nil, DropDetectMult},
		{"multipoint", "20e10318" + hexUp[8:], nil, DropMultipoint},
		{"my discriminator 0", "20e00318" + "00000000" + hexUp[16:], nil, DropMyDisc},
		{"your discriminator 0 in Up", "20e00318" + "00000001" + "00000000" + hexUp[24:], nil, DropYourDisc},
		{"your discriminator 0 in Init", "20800318" + "00000001" + "00000000" + hexUp[24:], nil, DropYourDisc},
		{"your discriminator 0 in AdminDown", "27000318" + "00000001" + "00000000" + hexUp[24:],
			&Packet{Diag: 7, State: AdminDown, DetectMult: 3, MyDisc: 1, DesiredMinTx: 300000, RequiredMinRx: 300000, RequiredMinEchoRx: 50000}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode(mustHex(t, tc.hex))
			if tc.drop != 0 {
				var de *DropError
				if !errors.As(err, &de) || de.Reason != tc.drop {
					t.Fatalf("error %v, want drop %s", err, tc.drop)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, p); d != "" {
				t.Fatalf("diff (-want +got):\n%s", d)
			}
			b, err := p.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tc.hex)[:int(b[3])]; string(b) != string(want) {
				t.Errorf("re-encoded %x, want %x", b, want)
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	for _, p := range []*Packet{
		{Diag: 32, State: Up},
		{State: 4},
		{Auth: true, AuthData: make([]byte, 230)},
	} {
		if _, err := p.Append(nil); err == nil {
			t.Errorf("Append(%+v) succeeded", p)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(mustHex(f, hexUp))
	f.Add(mustHex(f, "2044031d"+"00000001"+"00000000"+"000f4240"+"000f4240"+"00000000"+"010501"+"6162"))
	f.Add(mustHex(f, "27000318"+"00000001"+"00000000"+hexUp[24:]))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			var de *DropError
			if !errors.As(err, &de) || de.Reason == 0 || de.Reason >= numDropReasons {
				t.Fatalf("error %v is not a valid *DropError", err)
			}
			return
		}
		enc, err := p.Append(nil)
		if err != nil {
			t.Fatalf("decoded packet does not encode: %v", err)
		}
		if string(enc) != string(b[:len(enc)]) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		q, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if d := cmp.Diff(p, q); d != "" {
			t.Fatalf("re-decode diff:\n%s", d)
		}
	})
}
