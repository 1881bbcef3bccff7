/*
 * bcryptprimitives.dll for Wine 8, which lacks ProcessPrng: Go 1.22 and
 * later call it at startup for random bytes and abort without it. This
 * exports it over RtlGenRandom (advapi32's SystemFunction036), which Wine
 * has. Built by .ci/run with
 *   x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 * and copied into the throwaway Wine prefix's system32; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
	while (size > 0) {
		ULONG n = size > 0x40000000 ? 0x40000000 : (ULONG)size;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		size -= n;
	}
	return TRUE;
}
