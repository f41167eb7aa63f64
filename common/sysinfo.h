/*
 * sysinfo.h - the environment a result was measured in, recorded with every result: kernel, CPU,
 * memory, the build (commit, compiler, flags) and the network settings that shape a benchmark.
 */
#ifndef ECHOBENCH_SYSINFO_H
#define ECHOBENCH_SYSINFO_H

#include "json.h"

/* The build this binary came from (set at build time by common/buildinfo.cmake). */
const char *build_commit(void);
const char *build_compiler(void);
const char *build_flags(void);
const char *build_type(void);

/* Writes an object named key describing this machine and build: hostname, kernel, cpu_model,
 * cpus_online, memory_kib, commit, compiler, flags, build_type, sanitize, and the sysctls
 * somaxconn, ip_local_port_range, tcp_tw_reuse, io_uring_disabled (null where unreadable). */
void sysinfo_write_json(struct json *j, const char *key);

#endif
