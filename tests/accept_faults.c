/*
 * accept_faults.so - an LD_PRELOAD shim that makes every Nth accept()/accept4() of a process fail
 * with an error that belongs to one pending connection (ENETDOWN by default), as accept(2) says
 * Linux may report for a connection that went wrong before it was accepted. A server must treat
 * such errors as one client's trouble and go on accepting (tests/process_models.sh).
 *
 *   LD_PRELOAD=accept_faults.so ACCEPT_FAULT_EVERY=2 [ACCEPT_FAULT_ERRNO=71] COMMAND...
 *
 * The failing call does not take a connection off the queue: the next call gets it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static atomic_uint calls;

/* Says it is there, so that a test can tell a shim that did not load from a server that coped. */
__attribute__((constructor)) static void announce(void)
{
    if (getenv("ACCEPT_FAULT_EVERY"))
        fprintf(stderr, "accept_faults: every %s. accept() fails\n", getenv("ACCEPT_FAULT_EVERY"));
}

/* True when this call is one of the faulty ones (counted per process). */
static int inject(void)
{
    const char *every = getenv("ACCEPT_FAULT_EVERY");
    unsigned n = every ? (unsigned)atoi(every) : 0;
    if (n == 0 || (atomic_fetch_add(&calls, 1) + 1) % n != 0)
        return 0;
    const char *code = getenv("ACCEPT_FAULT_ERRNO");
    errno = code ? atoi(code) : ENETDOWN;
    return 1;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return inject() ? -1 : real(fd, addr, len, flags);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, 0);
}
