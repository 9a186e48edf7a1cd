package lab

import "testing"

// TestChecksum: RFC 1071's example, an odd length, and a partial sum.
func TestChecksum(t *testing.T) {
	if c := Checksum(0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); c != ^uint16(0xddf2) {
		t.Errorf("RFC 1071 example: %#04x, want %#04x", c, ^uint16(0xddf2))
	}
	if c := Checksum(0, []byte{0x01}); c != ^uint16(0x0100) {
		t.Errorf("odd length: %#04x", c)
	}
	if c := Checksum(0x0001, []byte{0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); c != ^uint16(0xddf2) {
		t.Errorf("from a partial sum: %#04x, want %#04x", c, ^uint16(0xddf2))
	}
}
