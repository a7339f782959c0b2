package synproxy

import "testing"

// The test vectors of the SipHash paper's appendix A: key 00 01 .. 0f, messages
// 00 01 .. (n-1).
func TestSipHashVectors(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{15, 0xa129ca6149be45e5},
	} {
		m := make([]byte, tc.n)
		for i := range m {
			m[i] = byte(i)
		}
		if got := sipHash(k0, k1, m); got != tc.want {
			t.Errorf("SipHash of %d bytes = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}
