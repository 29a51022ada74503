//! The seccomp filter every function process runs under.
//!
//! One filter, compiled once when the helper starts (with `seccompiler`, Firecracker's BPF
//! compiler, rather than hand-assembled BPF, but for a three-instruction prefix):
//! 1. `EPERM` for what a function never needs and an escape would: mounting, `pivot_root`,
//!    `ptrace` and cross-process memory access, `bpf`, kexec, the kernel keyring, module
//!    loading, `unshare`/`setns`, `clone` with any namespace flag, `perf_event_open`, swap,
//!    reboot, the clock, `open_by_handle_at`.
//! 2. `ENOSYS` for `clone3`, whose flags live in memory a filter cannot read; glibc and Go then
//!    fall back to `clone`, which filter 1 checks.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

/// Namespace-creating `clone` flags.
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Syscalls that fail with `EPERM`, whatever their arguments.
fn denied() -> Vec<i64> {
    let mut list = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_bpf,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_perf_event_open,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_quotactl,
        libc::SYS_acct,
        libc::SYS_syslog,
        libc::SYS_userfaultfd,
        libc::SYS_process_madvise,
        libc::SYS_kcmp,
        libc::SYS_pidfd_getfd,
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([libc::SYS_iopl, libc::SYS_ioperm]);
    list
}

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub(crate) struct FilterError(String);

/// The compiled filters, in the order they are installed.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub(crate) programs: Vec<BpfProgram>,
}

impl Filters {
    /// Compile the filters for this machine's architecture.
    pub(crate) fn compile() -> Result<Filters, FilterError> {
        let err = |e: &dyn std::fmt::Display| FilterError(e.to_string());
        let arch = std::env::consts::ARCH.try_into().map_err(|e| err(&e))?;
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            denied().into_iter().map(|s| (s, vec![])).collect();
        let clone_rules = NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let c = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )
                .map_err(|e| err(&e))?;
                SeccompRule::new(vec![c]).map_err(|e| err(&e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_clone, clone_rules);
        let deny = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )
        .map_err(|e| err(&e))?;
        let deny: BpfProgram = deny.try_into().map_err(|e| err(&e))?;
        // One program, not two: installing a filter costs about 0.14 ms (the kernel compiles
        // it), on every cold start. seccompiler has one match action per filter, so the clone3
        // check is three instructions of our own in front of its program: load the syscall
        // number, compare with clone3, return ENOSYS. (New syscalls such as clone3 have the
        // same number on every architecture; seccompiler's program checks the architecture
        // next.)
        let mut program = vec![
            sock_filter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: 0, // offsetof(struct seccomp_data, nr)
            },
            sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_clone3 as u32,
            },
            sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            },
        ];
        program.extend(deny);
        Ok(Filters {
            programs: vec![program],
        })
    }

    /// Install the filters on the calling thread (needs `no_new_privs` or `CAP_SYS_ADMIN`).
    pub(crate) fn apply(&self) -> Result<(), FilterError> {
        for p in &self.programs {
            seccompiler::apply_filter(p).map_err(|e| FilterError(e.to_string()))?;
        }
        Ok(())
    }
}
