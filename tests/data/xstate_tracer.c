/*
 * xstate_tracer.c: does to a child what user-mode-linux does to its guest processes, so that
 * tests/test_v2_guest.py can check scripts/uml_xstate_shim.c on this host's CPU.
 *
 * The child loads a pattern into xmm0 (inside UML's 832 bytes) and, where the CPU has
 * AVX-512, into zmm17 (beyond them), then stops. The tracer reads the state with an 832-byte
 * PTRACE_GETREGSET (as UML does when a guest thread leaves the CPU), then scribbles over the
 * registers beyond 832 bytes with a full-size SET (as running another guest thread on the
 * same host process would), writes a new xmm0 into its 832 bytes and sets them back (the
 * first thread returns). The child then checks: xmm0 must be the tracer's, zmm17 its own.
 * Prints "set=ok child=0" when both hold, "set=<errno name>" when the SET was refused.
 * An argument replaces 832 (the host's full size tests the shim's pass-through path).
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define UML_SIZE 832 /* UML 6.1's per-thread FPU buffer on x86-64 */
#define XMM0_OFFSET 160 /* in the legacy FXSAVE area */

static const unsigned char new_xmm0[16] = "tracer-wrote-me";

/* Only this function may use AVX-512: the file is compiled without -mavx512f, so that the
 * compiler never picks zmm registers for ordinary code (a memcpy, say), which would be an
 * illegal instruction on a CPU without AVX-512 (AMD EPYC before Zen 4, for one). */
__attribute__((target("avx512f"))) static void load_stop_read_avx512(
    const unsigned char *z_in, const unsigned char *xmm0_in, unsigned char *z_out, unsigned char *xmm0_out)
{
    __asm__ volatile(
        "vmovdqu64 (%[zi]), %%zmm17\n\t"
        "movdqu (%[xi]), %%xmm0\n\t"
        "mov $39, %%eax\n\tsyscall\n\t"                     /* getpid */
        "mov %%eax, %%edi\n\tmov $19, %%esi\n\tmov $62, %%eax\n\tsyscall\n\t" /* kill(SIGSTOP) */
        "vmovdqu64 %%zmm17, (%[zo])\n\t"
        "movdqu %%xmm0, (%[xo])\n\t"
        :: [zi] "r"(z_in), [xi] "r"(xmm0_in), [zo] "r"(z_out), [xo] "r"(xmm0_out)
        : "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "xmm17", "memory");
}

static int child(int avx512)
{
    unsigned char xmm0_in[16] = "child-xmm0-seed", xmm0_out[16];
    unsigned char z_in[64], z_out[64];
    for (int i = 0; i < 64; i++)
        z_in[i] = (unsigned char)(0xa5 ^ i);
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
        return 10;
    /* Registers are loaded, the stop happens and they are read back in one asm block, with
     * raw syscalls, so that no library code runs in between. */
    if (avx512) {
        load_stop_read_avx512(z_in, xmm0_in, z_out, xmm0_out);
    } else {
        __asm__ volatile(
            "movdqu (%[xi]), %%xmm0\n\t"
            "mov $39, %%eax\n\tsyscall\n\t"
            "mov %%eax, %%edi\n\tmov $19, %%esi\n\tmov $62, %%eax\n\tsyscall\n\t"
            "movdqu %%xmm0, (%[xo])\n\t"
            :: [xi] "r"(xmm0_in), [xo] "r"(xmm0_out)
            : "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "memory");
        memcpy(z_out, z_in, sizeof z_out);
    }
    if (memcmp(xmm0_out, new_xmm0, 16))
        return 1; /* the tracer's SET did not arrive */
    if (memcmp(z_out, z_in, 64))
        return 2; /* the registers beyond UML's 832 bytes were lost */
    return 0;
}

int main(int argc, char **argv)
{
    size_t uml_size = argc > 1 ? (size_t)atol(argv[1]) : UML_SIZE;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    int avx512 = (b >> 16) & 1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(avx512));
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSTOPPED(status)) {
        printf("child did not stop\n");
        return 1;
    }
    static unsigned char buf[1 << 16];
    struct iovec iov = { buf, uml_size };
    if (ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov) < 0) {
        printf("get=%s\n", strerrorname_np(errno));
        kill(pid, SIGKILL);
        return 1;
    }
    static unsigned char full[1 << 16];
    struct iovec whole = { full, sizeof full };
    if (ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole) == 0 && whole.iov_len > uml_size) {
        unsigned size, offset, e, f;
        __cpuid_count(0xd, 7, size, offset, e, f); /* where Hi16_ZMM (zmm16-31) lives */
        for (size_t i = offset; i < offset + size && i < whole.iov_len; i++)
            full[i] ^= 0xff;
        ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
    }
    memcpy(buf + XMM0_OFFSET, new_xmm0, 16);
    iov.iov_len = uml_size;
    if (ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &iov) < 0) {
        printf("set=%s avx512=%d\n", strerrorname_np(errno), avx512);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return 0;
    }
    ptrace(PTRACE_CONT, pid, 0, 0);
    waitpid(pid, &status, 0);
    printf("set=ok child=%d avx512=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, avx512);
    return 0;
}
