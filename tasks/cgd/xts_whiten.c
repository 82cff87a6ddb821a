/*
 * The whitening of cgd(4)'s aes-xts, for tasks/cgd/ciphers.py, which runs a batch of sectors
 * through OpenSSL's XTS as one data unit: OpenSSL encrypts many blocks at once, but its
 * masks run on from the first sector's encrypted tweak T_0, as T_0 * alpha^(32 r + j) for
 * block j of sector r, where cgd wants T_r * alpha^j.  The two differ by U_r * alpha^j with
 * U_r = T_r ^ T_0 * alpha^(32 r); XORed in before and after XTS it turns the batch's masks
 * into the sectors' own.  cgd_xts_relative makes the U_r, cgd_xts_whiten XORs their masks.
 * numpy would need several passes over memory for the masks; this makes them in registers.
 * tasks/cgd/native.py builds it with the host's cc and checks it against the definition.
 *
 * Blocks are 128-bit little-endian numbers as IEEE 1619 has them, read as two 64-bit words
 * in host order: on a big-endian host the check fails and numpy is used instead.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* the low and the high half of a block; GCC and Clang map it onto 128-bit registers */
typedef uint64_t block __attribute__((vector_size(16)));

/* memcpy, not a cast: the buffers need not be aligned, and in may be out */
static inline block
load(const unsigned char *p)
{
	block b;

	memcpy(&b, p, sizeof(b));
	return b;
}

static inline void
store(unsigned char *p, block b)
{
	memcpy(p, &b, sizeof(b));
}

/* T * alpha: a 128-bit shift left, the bit shifted out folded back in as x^7 + x^2 + x + 1 */
static inline block
times_alpha(block t)
{
	const block fold = {0x87, 1};
	block top = t >> 63;
	block carries = {top[1], top[0]};

	return (t << 1) ^ (-carries & fold);
}

/* T * alpha^k for 0 < k < 57 at once: the k bits shifted out fold back in without overflow */
static inline block
times_alpha_k(block t, int k)
{
	uint64_t low = t[0], high = t[1], over = high >> (64 - k);
	block r = {low << k ^ over ^ over << 1 ^ over << 2 ^ over << 7, high << k | low >> (64 - k)};

	return r;
}

/* tweaks[r] = T_r becomes U_r = T_r ^ T_0 * alpha^(32 r), for every sector r of the batch */
void
cgd_xts_relative(unsigned char *tweaks, size_t sectors)
{
	block running = load(tweaks);

	for (size_t r = 0; r < sectors; r++) {
		store(tweaks + 16 * r, load(tweaks + 16 * r) ^ running);
		running = times_alpha_k(running, 32);
	}
}

/* out = in ^ U_r * alpha^j over the 32 blocks j of every sector r, U_r being tweaks[r] */
void
cgd_xts_whiten(const unsigned char *tweaks, const unsigned char *in, unsigned char *out,
    size_t sectors)
{
	/*
	 * Four chains of multiplications a sector (blocks 0-7, 8-15, 16-23, 24-31) keep the
	 * processor busy while each waits on its previous step, and still read the data a
	 * sector at a time, which the hardware prefetcher follows (four sectors side by side
	 * ran at half the speed from memory).
	 */
	for (size_t s = 0; s < sectors; s++) {
		const unsigned char *p = in + 512 * s;
		unsigned char *o = out + 512 * s;
		block a = load(tweaks + 16 * s);
		block b = times_alpha_k(a, 8), c = times_alpha_k(a, 16), d = times_alpha_k(a, 24);

		for (int j = 0; j < 8; j++) {
			store(o + 16 * j, load(p + 16 * j) ^ a);
			store(o + 128 + 16 * j, load(p + 128 + 16 * j) ^ b);
			store(o + 256 + 16 * j, load(p + 256 + 16 * j) ^ c);
			store(o + 384 + 16 * j, load(p + 384 + 16 * j) ^ d);
			a = times_alpha(a);
			b = times_alpha(b);
			c = times_alpha(c);
			d = times_alpha(d);
		}
	}
}
