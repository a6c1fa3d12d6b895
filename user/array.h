/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* array: growth of the plain arrays the accounting modules keep. */
#ifndef PT_ARRAY_H
#define PT_ARRAY_H

#include <stdlib.h>

/*
 * arr with room for at least need elements of elem bytes, doubling from 16;
 * *cap is updated. NULL when out of memory: arr is then still valid.
 */
static inline void *array__grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return arr;
	while (n < need)
		n *= 2;
	p = realloc(arr, n * elem);
	if (p)
		*cap = n;
	return p;
}

#endif /* PT_ARRAY_H */
