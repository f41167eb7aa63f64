#include "sysinfo.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "buildinfo.h"

const char *build_commit(void) { return BUILD_COMMIT; }
const char *build_compiler(void) { return BUILD_COMPILER; }
const char *build_flags(void) { return BUILD_FLAGS; }
const char *build_type(void) { return BUILD_TYPE; }

/* Reads the first line of a file, without its newline; false if unreadable. */
static bool read_first_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* Finds "key<spaces>: value" in /proc/cpuinfo or "key: value kB" in /proc/meminfo. */
static bool read_keyed(const char *path, const char *key, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    size_t klen = strlen(key);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0)
            continue;
        char *colon = strchr(line + klen, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        snprintf(buf, len, "%s", v);
        found = true;
    }
    fclose(f);
    return found;
}

static void json_sysctl(struct json *j, const char *key, const char *path)
{
    char value[128];
    if (read_first_line(path, value, sizeof value)) {
        for (char *p = value; *p; p++)
            if (*p == '\t')
                *p = ' ';
        json_string(j, key, value);
    } else {
        json_null(j, key);
    }
}

void sysinfo_write_json(struct json *j, const char *key)
{
    struct utsname u;
    char host[256] = "", cpu[256] = "", mem[64] = "";
    uname(&u);
    gethostname(host, sizeof host - 1);
    if (!read_keyed("/proc/cpuinfo", "model name", cpu, sizeof cpu))
        snprintf(cpu, sizeof cpu, "%s", u.machine);
    read_keyed("/proc/meminfo", "MemTotal", mem, sizeof mem);
    unsigned long long mem_kib = 0;
    sscanf(mem, "%llu", &mem_kib);

    json_object_begin(j, key);
    json_string(j, "hostname", host);
    json_string(j, "kernel", u.release);
    json_string(j, "kernel_version", u.version);
    json_string(j, "machine", u.machine);
    json_string(j, "cpu_model", cpu);
    json_int(j, "cpus_online", sysconf(_SC_NPROCESSORS_ONLN));
    json_uint(j, "memory_kib", mem_kib);
    json_string(j, "commit", BUILD_COMMIT);
    json_string(j, "compiler", BUILD_COMPILER);
    json_string(j, "flags", BUILD_FLAGS);
    json_string(j, "build_type", BUILD_TYPE);
    json_string(j, "sanitize", BUILD_SANITIZE);
    json_object_begin(j, "sysctl");
    json_sysctl(j, "net.core.somaxconn", "/proc/sys/net/core/somaxconn");
    json_sysctl(j, "net.ipv4.ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range");
    json_sysctl(j, "net.ipv4.tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse");
    json_sysctl(j, "net.ipv4.tcp_congestion_control",
                "/proc/sys/net/ipv4/tcp_congestion_control");
    json_sysctl(j, "net.core.busy_poll", "/proc/sys/net/core/busy_poll");
    json_sysctl(j, "kernel.io_uring_disabled", "/proc/sys/kernel/io_uring_disabled");
    json_sysctl(j, "clocksource", "/sys/devices/system/clocksource/clocksource0/current_clocksource");
    json_object_end(j);
    json_object_end(j);
}
