//go:build !race

#include "textflag.h"

// func storeRelease64(addr *uint64, v uint64)
// x86 stores are never reordered with earlier stores, so a plain MOV of an
// aligned word is an atomic release store.
TEXT ·storeRelease64(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET
