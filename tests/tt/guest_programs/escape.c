/* Escape attempts a tt guest must fail; prints "NAME RESULT" per attempt
   (RESULT is "ok" when the call succeeded, else the errno name). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *name, long result) {
    if (result >= 0) printf("%s ok\n", name);
    else printf("%s %s\n", name, strerrorname_np(errno));
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *host_file = argc > 1 ? argv[1] : "/etc/hostname";
    long host_pid = argc > 2 ? atol(argv[2]) : 1;
    char buffer[64];
    struct iovec local = {buffer, sizeof buffer}, remote = {buffer, sizeof buffer};
    report("open_host_file", open(host_file, O_RDONLY));
    report("io_uring_setup", syscall(425, 1, buffer));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, buffer, O_RDONLY));
    report("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buffer, buffer, 0));
    report("ptrace_attach_init", ptrace(PTRACE_ATTACH, 1, 0, 0));
    report("process_vm_readv", process_vm_readv(1, &local, 1, &remote, 1, 0));
    report("bpf", syscall(SYS_bpf, 0, buffer, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, buffer, 0, -1, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    report("init_module", syscall(SYS_init_module, buffer, 0, ""));
    report("mount_ext4", mount("/dev/sda", "/mnt", "ext4", 0, 0));
    report("mount_bind", mount("/", "/mnt", 0, MS_BIND, 0));
    report("unshare_mount_ns", unshare(CLONE_NEWNS));
    report("unshare_user_ns", unshare(CLONE_NEWUSER));
    report("setns", syscall(SYS_setns, 0, 0));
    report("clone3", syscall(435, buffer, 0));
    report("chroot", chroot("/tmp"));
    report("pivot_root", syscall(SYS_pivot_root, "/", "/tmp"));
    struct timeval now = {0, 0};
    report("settimeofday", settimeofday(&now, 0));
    report("kill_host_process", kill(host_pid, 0));
    report("open_kcore", open("/proc/kcore", O_RDONLY));
    report("write_sysrq_trigger", open("/proc/sysrq-trigger", O_WRONLY));
    report("write_sysctl", open("/proc/sys/kernel/hostname", O_WRONLY));
    report("swapon", syscall(SYS_swapon, "/tmp", 0));
    report("iopl", syscall(SYS_iopl, 3));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("keyctl", syscall(SYS_keyctl, 0, 0, 0));
    /* the 32-bit syscall ABI would bypass the filter's x86-64 table: the process is killed */
    if (argc > 3) {
        puts("int80 trying");
        fflush(stdout);
        long result;
        __asm__ volatile("int $0x80" : "=a"(result) : "a"(5), "b"(host_file), "c"(0) : "memory");
        printf("int80 survived %ld\n", result);
    }
    return 0;
}
