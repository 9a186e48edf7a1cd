package lvs

import (
	"slices"
	"testing"
)

func TestScaleWeights(t *testing.T) {
	if got := scaleWeights([]int{1000000, 1}); !slices.Equal(got, []int{256, 1}) {
		t.Errorf("scaleWeights = %v", got)
	}
	if got := scaleWeights([]int{3, 1}); !slices.Equal(got, []int{3, 1}) {
		t.Errorf("scaleWeights = %v, want unchanged", got)
	}
}
