/*
 * uml_xstate_shim.c: lets Debian's user-mode-linux run on hosts whose XSAVE area is larger
 * than 832 bytes (CPUs with AVX-512 or AMX). Preloaded into the `linux.uml` process only,
 * by scripts/v2_guest.py; compiled there with the machine's `cc` into a cache.
 *
 * Why: UML keeps each guest thread's FPU state in an 832-byte buffer and moves it with
 * ptrace(PTRACE_GETREGSET / PTRACE_SETREGSET, NT_X86_XSTATE). The host kernel answers a short
 * GET with the first bytes of the state, but refuses a SET that is not the full XSAVE size
 * (arch/x86/kernel/fpu/regset.c: "A whole standard-format XSAVE buffer is needed") with
 * EFAULT, and the guest's first process dies ("ptrace set fp regs failed, errno = 14").
 * Making that call fail some other way is no fix: UML falls back to the 512-byte legacy area
 * and every guest page fault then wipes the faulting process's AVX-512 registers.
 *
 * What: UML passes the same buffer (a field of the guest thread's thread_struct) for a
 * thread's GET and SET, so its address names the guest thread. For each such buffer we keep a
 * shadow copy of the full host-size state:
 *   - a short GET reads the full state into the shadow and hands UML its first bytes;
 *   - a short SET writes the shadow with UML's bytes merged over its start (so the
 *     registers beyond 832 bytes come back as the thread left them).
 * Where UML's size already is the host's (AVX2-only CPUs), every call passes straight through.
 *
 * Environment: MINI_UML_SHIM_LOG=FILE appends one line per intercepted call (for the tests).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#define SLOTS 2048 /* guest threads whose state we shadow at once; more evict the oldest */

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

struct shadow {
    void *key;          /* UML's buffer: one per guest thread */
    unsigned char *full;
};

static ptrace_fn real_ptrace;
static size_t host_size;          /* the host's full XSAVE size, learned at the first call */
static struct shadow slots[SLOTS];
static unsigned next_victim;
static FILE *log_file;
static unsigned long passed, widened;

static void note(const char *what, pid_t pid, size_t len)
{
    if (log_file)
        fprintf(log_file, "%s pid=%d len=%zu host=%zu\n", what, (int)pid, len, host_size);
}

static void setup(void)
{
    real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    const char *log = getenv("MINI_UML_SHIM_LOG");
    if (log && *log) {
        log_file = fopen(log, "a");
        if (log_file)
            setvbuf(log_file, NULL, _IOLBF, 0);
    }
}

/* The full size is what a GET with a generous buffer reports back in iov_len. */
static int learn_host_size(pid_t pid)
{
    if (host_size)
        return 0;
    size_t room = 1 << 16;
    void *probe = malloc(room);
    if (!probe)
        return -1;
    struct iovec iov = { probe, room };
    long r = real_ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &iov);
    free(probe);
    if (r < 0)
        return -1;
    host_size = iov.iov_len;
    note("host-size", pid, host_size);
    return 0;
}

static struct shadow *shadow_for(void *key, int create)
{
    size_t h = ((uintptr_t)key >> 4) % SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        struct shadow *s = &slots[(h + i) % SLOTS];
        if (s->key == key)
            return s;
        if (!s->key) {
            if (!create)
                return NULL;
            s->full = malloc(host_size);
            if (!s->full)
                return NULL;
            s->key = key;
            return s;
        }
    }
    if (!create)
        return NULL;
    /* Full: reuse a slot. Open addressing never deletes, so keep the table consistent by
     * only overwriting the key's full buffer in place. */
    struct shadow *s = &slots[next_victim++ % SLOTS];
    s->key = key;
    return s;
}

static long get_xstate(pid_t pid, struct iovec *iov)
{
    struct shadow *s = shadow_for(iov->iov_base, 1);
    if (!s)
        return errno = ENOMEM, -1;
    struct iovec full = { s->full, host_size };
    long r = real_ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &full);
    if (r < 0)
        return r;
    memcpy(iov->iov_base, s->full, iov->iov_len);
    widened++;
    note("get", pid, iov->iov_len);
    return r;
}

static long set_xstate(pid_t pid, struct iovec *iov)
{
    struct shadow *s = shadow_for(iov->iov_base, 0);
    unsigned char *base;
    unsigned char *scratch = NULL;
    if (s) {
        base = s->full;
    } else {
        /* A thread UML never read: start from what the host process holds now. */
        scratch = malloc(host_size);
        if (!scratch)
            return errno = ENOMEM, -1;
        struct iovec cur = { scratch, host_size };
        long r = real_ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &cur);
        if (r < 0) {
            free(scratch);
            return r;
        }
        base = scratch;
    }
    memcpy(base, iov->iov_base, iov->iov_len);
    struct iovec full = { base, host_size };
    long r = real_ptrace(PTRACE_SETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &full);
    free(scratch);
    widened++;
    note(s ? "set" : "set-unseen", pid, iov->iov_len);
    return r;
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (!real_ptrace)
        setup();

    if ((request == PTRACE_GETREGSET || request == PTRACE_SETREGSET)
            && (uintptr_t)addr == NT_X86_XSTATE && data) {
        struct iovec *iov = data;
        if (learn_host_size(pid) == 0 && iov->iov_len < host_size)
            return request == PTRACE_GETREGSET ? get_xstate(pid, iov) : set_xstate(pid, iov);
        if (passed++ == 0)
            note("pass-through", pid, iov->iov_len);
    }
    return real_ptrace(request, pid, addr, data);
}
