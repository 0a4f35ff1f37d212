//! Plumbing shared by the links whose directions are queues of payload
//! slots (the memory link, the framed link): the slot queue, the generic
//! halves, and a macro that wraps them in each link's own named types.

pub(crate) mod queue_link;
pub(crate) mod slot_queue;

/// Defines a link type, its Tx and Rx halves, as newtypes over the generic
/// queue halves for storage `$storage`, so each link's docs show its own
/// names and the queue plumbing stays private.
macro_rules! queue_link_types {
    (
        $storage:ident;
        $(#[$link_meta:meta])* link $link:ident;
        $(#[$tx_meta:meta])* tx $tx:ident;
        $(#[$rx_meta:meta])* rx $rx:ident;
    ) => {
        $(#[$link_meta])*
        pub struct $link<M: embassy_sync::blocking_mutex::raw::RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
            crate::queue::queue_link::QueueLink<$storage<M, SLOTS, MTU>, M, SLOTS, MTU>,
        );

        $(#[$tx_meta])*
        pub struct $tx<M: embassy_sync::blocking_mutex::raw::RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
            crate::queue::queue_link::QueueTx<$storage<M, SLOTS, MTU>, M, SLOTS, MTU>,
        );

        $(#[$rx_meta])*
        pub struct $rx<M: embassy_sync::blocking_mutex::raw::RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
            crate::queue::queue_link::QueueRx<$storage<M, SLOTS, MTU>, M, SLOTS, MTU>,
        );

        impl<M, const SLOTS: usize, const MTU: usize> vox_types::Link for $link<M, SLOTS, MTU>
        where
            M: embassy_sync::blocking_mutex::raw::RawMutex + vox_types::MaybeSend + vox_types::MaybeSync + 'static,
            $storage<M, SLOTS, MTU>: vox_types::MaybeSend + vox_types::MaybeSync,
        {
            type Tx = $tx<M, SLOTS, MTU>;
            type Rx = $rx<M, SLOTS, MTU>;

            fn split(self) -> (Self::Tx, Self::Rx) {
                let (tx, rx) = vox_types::Link::split(self.0);
                ($tx(tx), $rx(rx))
            }
        }

        impl<M, const SLOTS: usize, const MTU: usize> vox_types::LinkTx for $tx<M, SLOTS, MTU>
        where
            M: embassy_sync::blocking_mutex::raw::RawMutex + vox_types::MaybeSend + vox_types::MaybeSync + 'static,
            $storage<M, SLOTS, MTU>: vox_types::MaybeSend + vox_types::MaybeSync,
        {
            type Permit<'a> = crate::queue::queue_link::QueuePermit<'a, $storage<M, SLOTS, MTU>, M, SLOTS, MTU>;

            fn reserve(
                &self,
            ) -> impl core::future::Future<Output = Result<Self::Permit<'_>, vox_types::LinkError>>
                   + vox_types::MaybeSend
                   + '_ {
                vox_types::LinkTx::reserve(&self.0)
            }

            fn max_payload(&self) -> usize {
                MTU
            }

            fn close(self) -> impl core::future::Future<Output = Result<(), vox_types::LinkError>> + vox_types::MaybeSend {
                vox_types::LinkTx::close(self.0)
            }
        }

        impl<M, const SLOTS: usize, const MTU: usize> vox_types::LinkRx for $rx<M, SLOTS, MTU>
        where
            M: embassy_sync::blocking_mutex::raw::RawMutex + vox_types::MaybeSend + vox_types::MaybeSync + 'static,
            $storage<M, SLOTS, MTU>: vox_types::MaybeSend + vox_types::MaybeSync,
        {
            fn poll_recv(
                &mut self,
                cx: &mut core::task::Context<'_>,
            ) -> core::task::Poll<Result<Option<vox_types::Backing>, vox_types::LinkError>> {
                vox_types::LinkRx::poll_recv(&mut self.0, cx)
            }

            fn poll_recv_in_place<R>(
                &mut self,
                cx: &mut core::task::Context<'_>,
                f: impl FnOnce(&[u8]) -> R,
            ) -> core::task::Poll<Result<Option<R>, vox_types::LinkError>> {
                vox_types::LinkRx::poll_recv_in_place(&mut self.0, cx, f)
            }
        }
    };
}
pub(crate) use queue_link_types;
