// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * libFuzzer target: any bytes as the body of a raw recording (records, each
 * a native-endian __u32 length and the record), fed to one decoder, with
 * its clock moved between records and the stream ended. The decoder must
 * check every size and type before it reads, never read out of bounds,
 * overflow or hang, and every event it makes must be whole (ASan and UBSan
 * watch; the consumer reads every field).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "decoder.h"

static int consume(void *ctx, const struct pt_event *ev)
{
	unsigned long long *sum = ctx;

	*sum += ev->type + ev->ts_ns + ev->sk.cookie + ev->sk.lport + ev->owner.pid + ev->kind +
		ev->reason + ev->flags + ev->oldstate + ev->newstate + (unsigned int)ev->err +
		strnlen(ev->owner.comm, sizeof(ev->owner.comm));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decoder *d = decoder__new();
	unsigned long long sum = 0;
	size_t off = 0;
	__u64 now = 0;

	if (!d)
		return 0;
	while (off + sizeof(__u32) <= size) {
		_Alignas(8) unsigned char rec[512];
		__u32 n;

		memcpy(&n, data + off, sizeof(n));
		off += sizeof(n);
		if (n > size - off)
			n = size - off;
		/* The ring delivers records 8-byte aligned: so does this. */
		memcpy(rec, data + off, n < sizeof(rec) ? n : sizeof(rec));
		decoder__record(d, rec, n < sizeof(rec) ? n : sizeof(rec), consume, &sum);
		off += n;
		now += (__u64)n << 24;
		decoder__tick(d, now, consume, &sum);
	}
	decoder__end(d, consume, &sum);
	decoder__tick(d, UINT64_MAX, consume, &sum);
	decoder__free(d);
	return 0;
}
