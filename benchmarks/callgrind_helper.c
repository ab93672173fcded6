/* Callgrind's client requests, callable from Python through ctypes (see callgrind.py).
 * Outside valgrind each one is a handful of no-op instructions. */
#include <valgrind/callgrind.h>

void otel_bench_zero(void) { CALLGRIND_ZERO_STATS; }
void otel_bench_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
void otel_bench_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
int otel_bench_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
