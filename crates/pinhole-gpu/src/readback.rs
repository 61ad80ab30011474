//! Mapping buffers for reading, as a future that works both natively (where `Device::poll`
//! drives the callbacks) and in the browser (where the event loop does).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

type Slot = Arc<Mutex<(Option<Result<(), String>>, Option<Waker>)>>;

pub struct MapFuture {
    slot: Slot,
}

impl MapFuture {
    /// Starts mapping `buffer[..size]` for reading.
    pub fn new(buffer: &wgpu::Buffer, size: u64) -> MapFuture {
        let slot: Slot = Arc::new(Mutex::new((None, None)));
        let s2 = slot.clone();
        buffer.map_async(wgpu::MapMode::Read, ..size, move |r| {
            let mut g = s2.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = Some(r.map_err(|e| e.to_string()));
            if let Some(w) = g.1.take() {
                w.wake();
            }
        });
        MapFuture { slot }
    }
}

impl Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut g = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match g.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
