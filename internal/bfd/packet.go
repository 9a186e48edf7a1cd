package bfd

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// The control packet's mandatory section (RFC 5880 section 4.1) is 24
// bytes; an authentication section (section 4.2) follows it when the A bit
// is set and starts with its type and length bytes.
const (
	headerLen   = 24
	authHdrLen  = 2
	version     = 1
	maxWireDiag = 31
)

// The diagnostic codes (RFC 5880 section 4.1, "Diag") the engine sets.
const (
	DiagNone         uint8 = 0
	DiagExpired      uint8 = 1 // Control Detection Time Expired
	DiagNeighborDown uint8 = 3 // Neighbor Signaled Session Down
	DiagAdminDown    uint8 = 7 // Administratively Down
)

// Packet is a decoded BFD control packet. Intervals are in microseconds,
// as on the wire.
type Packet struct {
	Diag  uint8
	State State
	// The flag bits: Poll, Final, Control Plane Independent,
	// Authentication present, Demand, Multipoint.
	Poll, Final, CPI, Auth, Demand, Multipoint     bool
	DetectMult                                     uint8
	MyDisc, YourDisc                               uint32
	DesiredMinTx, RequiredMinRx, RequiredMinEchoRx uint32
	// AuthType and AuthData are the authentication section (RFC 5880
	// section 4.2) when Auth is set: its type byte and the bytes after
	// its length byte. The engine uses no authentication and drops such
	// packets (section 6.8.6: "If the A bit is set and no authentication
	// is in use ... the packet MUST be discarded"); they are decoded so
	// that the drop is counted as that, not as a malformed packet.
	AuthType uint8
	AuthData []byte
}

// DropReason says why a received packet was not acted on.
type DropReason uint8

// The reasons, in the order of RFC 5880 section 6.8.6's checks.
const (
	DropShort       DropReason = iota + 1 // shorter than the Length field or the header
	DropVersion                           // Version is not 1
	DropLength                            // Length below the minimum for the A bit
	DropAuthSection                       // authentication section malformed
	DropDetectMult                        // Detect Mult is zero
	DropMultipoint                        // M bit set
	DropMyDisc                            // My Discriminator is zero
	DropYourDisc                          // Your Discriminator zero outside Down/AdminDown
	DropNoSession                         // no session has this discriminator or peer
	DropAuth                              // A bit set: no authentication is configured
	DropTTL                               // received TTL/hop limit below the GTSM floor
	numDropReasons
)

var dropNames = [numDropReasons]string{"", "short", "version", "length", "auth-section", "detect-mult",
	"multipoint", "my-discriminator", "your-discriminator", "no-session", "auth", "ttl"}

func (r DropReason) String() string {
	if r > 0 && r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// DropError is the error of a packet that is dropped, and why.
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string {
	return strings.TrimSuffix("bfd: drop: "+e.Reason.String()+": "+e.Detail, ": ")
}

func dropf(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Decode parses b and applies the checks of RFC 5880 section 6.8.6 that
// need no session: everything up to the discriminator lookup. Bytes after
// the Length field are ignored (the section only requires Length not to
// exceed the payload). The error is always a *DropError.
func Decode(b []byte) (*Packet, error) {
	if len(b) < headerLen {
		return nil, dropf(DropShort, "%d bytes", len(b))
	}
	if v := b[0] >> 5; v != version {
		return nil, dropf(DropVersion, "version %d", v)
	}
	p := &Packet{
		Diag:              b[0] & 0x1f,
		State:             State(b[1] >> 6),
		Poll:              b[1]&0x20 != 0,
		Final:             b[1]&0x10 != 0,
		CPI:               b[1]&0x08 != 0,
		Auth:              b[1]&0x04 != 0,
		Demand:            b[1]&0x02 != 0,
		Multipoint:        b[1]&0x01 != 0,
		DetectMult:        b[2],
		MyDisc:            binary.BigEndian.Uint32(b[4:]),
		YourDisc:          binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:      binary.BigEndian.Uint32(b[12:]),
		RequiredMinRx:     binary.BigEndian.Uint32(b[16:]),
		RequiredMinEchoRx: binary.BigEndian.Uint32(b[20:]),
	}
	n := int(b[3])
	min := headerLen
	if p.Auth {
		min = headerLen + authHdrLen
	}
	if n < min {
		return nil, dropf(DropLength, "length %d", n)
	}
	if n > len(b) {
		return nil, dropf(DropShort, "length %d, %d bytes", n, len(b))
	}
	if p.Auth {
		p.AuthType = b[headerLen]
		al := int(b[headerLen+1])
		if al < authHdrLen || headerLen+al != n {
			return nil, dropf(DropAuthSection, "auth length %d in packet length %d", al, n)
		}
		p.AuthData = append([]byte(nil), b[headerLen+authHdrLen:n]...)
	} else if n != headerLen {
		// Without authentication the packet is exactly the mandatory
		// section; anything else inside Length is not a BFD v1 packet.
		return nil, dropf(DropLength, "length %d without authentication", n)
	}
	switch {
	case p.DetectMult == 0:
		return nil, dropf(DropDetectMult, "")
	case p.Multipoint:
		return nil, dropf(DropMultipoint, "")
	case p.MyDisc == 0:
		return nil, dropf(DropMyDisc, "")
	case p.YourDisc == 0 && p.State != Down && p.State != AdminDown:
		return nil, dropf(DropYourDisc, "zero in state %s", p.State)
	}
	return p, nil
}

// Append encodes p after b. It fails on what Decode would not accept back
// (an authentication section too long for the Length byte, a diag that
// does not fit its five bits, a state above Up).
func (p *Packet) Append(b []byte) ([]byte, error) {
	n := headerLen
	if p.Auth {
		n += authHdrLen + len(p.AuthData)
		if n > 255 {
			return b, fmt.Errorf("bfd: authentication data of %d bytes does not fit", len(p.AuthData))
		}
	}
	if p.Diag > maxWireDiag || p.State > Up {
		return b, fmt.Errorf("bfd: diag %d or state %d out of range", p.Diag, p.State)
	}
	flags := uint8(p.State) << 6
	for i, set := range []bool{p.Poll, p.Final, p.CPI, p.Auth, p.Demand, p.Multipoint} {
		if set {
			flags |= 0x20 >> i
		}
	}
	b = append(b, version<<5|p.Diag, flags, p.DetectMult, uint8(n))
	for _, v := range []uint32{p.MyDisc, p.YourDisc, p.DesiredMinTx, p.RequiredMinRx, p.RequiredMinEchoRx} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	if p.Auth {
		b = append(b, p.AuthType, uint8(authHdrLen+len(p.AuthData)))
		b = append(b, p.AuthData...)
	}
	return b, nil
}
