//! A hint to the CPU to load memory the program will read soon: walks over the tree's
//! million nodes, in an order that is random in memory, otherwise wait on every load
//! one after another.

/// Asks the CPU to load the cache line at `address`; a hint, with no effect on what the
/// program computes.
#[inline]
pub fn fetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault, whatever the
    // address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
