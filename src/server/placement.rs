//! Where threads run and at what priority: the executors pinned one per CPU, helper
//! threads (the snapshotter, the log's zero fill) anywhere, below the executors.

use crate::config::Config;

/// The CPU each executor is pinned to, or None (unpinned) when there are more executors
/// than CPUs this process may use. The CPUs are those of the process's affinity mask
/// (`taskset` chooses them), in order, starting for the member listed N-th (from 0) among
/// the `server.` lines at the (N x cores)-th, wrapping: members sharing a host (a local ensemble, the tests)
/// then spread over its CPUs instead of all pinning their first executor to the same one,
/// and a member alone on its host with as many executors as CPUs uses every CPU either way.
pub fn executor_cpus(config: &Config, cores: usize) -> Option<Vec<usize>> {
    // The member's place among the configured ones, not its id: ids need not be dense.
    let place = config.servers.iter().position(|server| server.id == config.my_id).unwrap_or(0);
    let first = if config.is_ensemble() { place.wrapping_mul(cores) } else { 0 };
    spread(allowed_cpus(), first, cores)
}

/// `cores` CPUs of `allowed`, from its `first`-th on, wrapping; None if there are fewer.
fn spread(allowed: &[usize], first: usize, cores: usize) -> Option<Vec<usize>> {
    if cores > allowed.len() {
        return None;
    }
    Some((0..cores).map(|core| allowed[(first + core) % allowed.len()]).collect())
}

/// How long an executor with nothing to do polls for work before it sleeps (glommio's
/// spin before park; it spins only when pinned), or None to sleep at once. Waking a
/// sleeping thread costs tens of microseconds on a virtual machine (the wake-up, the
/// vCPU leaving its halt); a request that arrives within the window is taken at once. A
/// lone get on two cores: p50 75 -> 50 us, and 64 x 16 creates no slower (A/B,
/// `ringkeeper bench`). Only where the executors have their CPUs to themselves: members
/// of a loopback ensemble that share CPUs would spin on each other's time (a lone set
/// through three one-executor members on two CPUs: p50 0.430 -> 0.541 ms).
pub fn spin_before_park(config: &Config, cores: usize) -> Option<std::time::Duration> {
    const SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(50);
    let executors_here = members_on_this_host(config) * cores;
    (executors_here <= allowed_cpus().len()).then_some(SPIN_BEFORE_PARK)
}

/// The members configured on this member's host, itself included (1 standalone): those
/// whose quorum address is its own, or a loopback one when its own is. A member listed at
/// 0.0.0.0 cannot tell, and counts every member as on its host (it then does not spin).
fn members_on_this_host(config: &Config) -> usize {
    let ip_of = |server: &crate::config::ServerSpec| server.quorum_address().ok().map(|address| address.ip());
    let Some(mine) = config.servers.iter().find(|server| server.id == config.my_id).and_then(ip_of) else {
        return 1;
    };
    let here = |ip: &std::net::IpAddr| *ip == mine || (ip.is_loopback() && mine.is_loopback()) || mine.is_unspecified();
    config.servers.iter().filter_map(ip_of).filter(here).count().max(1)
}

/// The CPUs in this process's affinity mask, ascending, as the first caller's thread had
/// it: `executor_cpus`, on the main thread before any executor is pinned. A thread's own
/// mask is not the process's once it is pinned (a helper started from an executor
/// inherits that executor's single CPU).
fn allowed_cpus() -> &'static [usize] {
    static PROCESS_CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    PROCESS_CPUS.get_or_init(this_threads_cpus)
}

fn this_threads_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if read != 0 {
        let count = std::thread::available_parallelism().map_or(1, |count| count.get());
        return (0..count).collect();
    }
    // SAFETY: CPU_ISSET reads the set filled above, within CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// For a helper thread, at its start: it may run on any CPU of the process (not only on
/// the executor's it was started from, whose affinity it inherited), in the idle CPU
/// scheduling class and the idle I/O class: snapshots and zero fills must yield to the serving
/// executors and to the log's O_DSYNC writes, which every write waits for.
pub fn run_in_background() {
    unpin();
    // SAFETY: plain syscalls on the calling thread (pid/tid 0 means this thread for
    // sched_setscheduler and ioprio_set).
    unsafe {
        // SCHED_IDLE: the thread runs only on a CPU nothing else wants, and an executor
        // waking there preempts it at once (nice 19 still takes a share of a busy CPU).
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            lower_priority();
        }
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
        let class = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
        if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, class) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower a helper thread's I/O priority");
        }
    }
}

/// For the operations endpoints' thread: on any CPU of the process at nice 19, so it
/// yields to the serving executors yet still answers (a scrape of a saturated server is
/// when its metrics matter most; SCHED_IDLE could starve it).
pub fn run_at_low_priority() {
    unpin();
    lower_priority();
}

fn unpin() {
    // SAFETY: sched_setaffinity on the calling thread (pid 0) with a set we built.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in allowed_cpus() {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot unpin a helper thread");
        }
    }
}

fn lower_priority() {
    // SAFETY: setpriority on the calling thread's id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower a helper thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sharing_a_host_spread_over_its_cpus() {
        // Three one-executor members on CPUs 2 and 5 (taskset -c 2,5): 2, 5, 2.
        let allowed = [2, 5];
        let firsts = [0, 1, 2];
        let cpus: Vec<_> = firsts.iter().map(|&first| spread(&allowed, first, 1).unwrap()).collect();
        assert_eq!(cpus, [vec![2], vec![5], vec![2]]);
        // A member alone with an executor per CPU uses every CPU whatever its id.
        assert_eq!(spread(&[0, 1, 2, 3], 4, 4).unwrap(), [0, 1, 2, 3]);
        assert_eq!(spread(&[0, 1, 2, 3], 3, 4).unwrap(), [3, 0, 1, 2]);
        // More executors than CPUs: unpinned.
        assert_eq!(spread(&[0, 1], 0, 3), None);
    }

    #[test]
    fn members_on_loopback_addresses_share_a_host_and_members_elsewhere_do_not() {
        let member = |id: u64, host: &str| crate::config::ServerSpec {
            id,
            host: host.into(),
            quorum_port: 2888,
            election_port: 3888,
            observer: false,
            client_port: None,
            client_host: None,
        };
        let mut config = Config::default();
        assert_eq!(members_on_this_host(&config), 1, "standalone");
        config.my_id = 2;
        config.servers = vec![member(1, "127.0.0.1"), member(2, "127.0.0.2"), member(3, "127.0.0.3")];
        assert_eq!(members_on_this_host(&config), 3, "a loopback ensemble");
        config.servers = vec![member(1, "10.0.0.1"), member(2, "10.0.0.2"), member(3, "10.0.0.3")];
        assert_eq!(members_on_this_host(&config), 1, "one member per host");
        config.servers = vec![member(1, "10.0.0.1"), member(2, "10.0.0.2"), member(3, "10.0.0.2")];
        assert_eq!(members_on_this_host(&config), 2);
        config.servers = vec![member(1, "10.0.0.1"), member(2, "0.0.0.0"), member(3, "10.0.0.3")];
        assert_eq!(members_on_this_host(&config), 3, "listed at 0.0.0.0: cannot tell");
    }
}
