//! `AsyncFile`: a `std::fs::File` whose every operation runs on a worker thread.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path as StdPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use futures_core::Stream;

use super::{blocking, FsError};
use crate::sync::{CapacityLimiter, CapacityLimiterError, OwnedCapacityToken};

/// How to open a file: std's [`std::fs::OpenOptions`], plus Python's mode strings
/// ([`from_mode`](Self::from_mode)) for code ported from AnyIO.
///
/// # Examples
///
/// ```
/// use anyio::fs::OpenOptions;
/// let append = OpenOptions::from_mode("a").unwrap();
/// let mut same = OpenOptions::new();
/// same.append(true).create(true);
/// # let _ = (append, same);
/// assert!(OpenOptions::from_mode("q").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions(pub(crate) std::fs::OpenOptions);

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Nothing set yet (as `std::fs::OpenOptions::new`): set at least read or write.
    ///
    /// ```
    /// let mut o = anyio::fs::OpenOptions::new();
    /// o.read(true);
    /// ```
    pub fn new() -> Self {
        OpenOptions(std::fs::OpenOptions::new())
    }

    /// Python's `open` modes: `r`, `w`, `a`, `x`, each optionally with `+` (read and write),
    /// and `b` or `t` (ignored: files hold bytes).
    ///
    /// # Errors
    ///
    /// [`FsError::InvalidArgument`] for any other mode.
    ///
    /// ```
    /// assert!(anyio::fs::OpenOptions::from_mode("rb+").is_ok());
    /// ```
    pub fn from_mode(mode: &str) -> Result<Self, FsError> {
        let bad = || {
            FsError::InvalidArgument(format!("invalid open mode {mode:?}: use r, w, a or x, with + and b"))
        };
        let mut o = std::fs::OpenOptions::new();
        let plus = mode.contains('+');
        let base: Vec<char> = mode.chars().filter(|c| !matches!(c, '+' | 'b' | 't')).collect();
        if base.len() != 1 || mode.chars().filter(|&c| c == '+').count() > 1 {
            return Err(bad());
        }
        match base[0] {
            'r' => o.read(true).write(plus),
            'w' => o.write(true).create(true).truncate(true).read(plus),
            'a' => o.append(true).create(true).read(plus),
            'x' => o.write(true).create_new(true).read(plus),
            _ => return Err(bad()),
        };
        Ok(OpenOptions(o))
    }

    /// Open for reading.
    pub fn read(&mut self, yes: bool) -> &mut Self {
        self.0.read(yes);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, yes: bool) -> &mut Self {
        self.0.write(yes);
        self
    }

    /// Every write goes to the end.
    pub fn append(&mut self, yes: bool) -> &mut Self {
        self.0.append(yes);
        self
    }

    /// Empty the file when opening it.
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.0.truncate(yes);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.0.create(yes);
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, yes: bool) -> &mut Self {
        self.0.create_new(yes);
        self
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    fn from(o: std::fs::OpenOptions) -> Self {
        OpenOptions(o)
    }
}

/// Opens a file (AnyIO's `open_file`) on a worker thread.
///
/// # Errors
///
/// [`FsError::Io`] naming the path: missing file, no permission, or a directory (refused
/// with `IsADirectory`, as Python does, although the system would open one for reading).
///
/// # Cancel safety
///
/// Not abandoned once started (opening may create the file): a cancelled call still finishes
/// and returns the file; the next checkpoint raises the cancellation.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::fs::{open_file, OpenOptions};
/// let err = open_file("/no/such/file", OpenOptions::from_mode("r")?).await.unwrap_err();
/// assert_eq!(err.kind(), Some(std::io::ErrorKind::NotFound));
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
pub async fn open_file(path: impl AsRef<StdPath>, options: OpenOptions) -> Result<AsyncFile, FsError> {
    let path = path.as_ref().to_path_buf();
    let p = path.clone();
    let (file, regular, cheap_close) = blocking("open", Some(&path), false, None, move || {
        let file = options.0.open(&p)?;
        let kind = file.metadata()?.file_type();
        if kind.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        let cheap_close = closes_without_blocking(&file);
        Ok((file, kind.is_file(), cheap_close))
    })
    .await?;
    let f = AsyncFile::new(file, Some(path));
    {
        let mut st = f.inner.state();
        st.regular = Some(regular);
        st.cheap_close = cheap_close;
    }
    Ok(f)
}

/// Wraps an open `std::fs::File` (AnyIO's `wrap_file`).
///
/// ```
/// # anyio::run(async {
/// let f = anyio::fs::wrap_file(tempfile_for_doc());
/// f.write_all(b"x").await?;
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// # fn tempfile_for_doc() -> std::fs::File {
/// #     std::fs::File::create(std::env::temp_dir().join(format!("anyio-wrap-{}", std::process::id()))).unwrap()
/// # }
/// ```
pub fn wrap_file(file: File) -> AsyncFile {
    AsyncFile::new(file, None)
}

struct FileState {
    /// `None` once closed, and while an operation's worker or the read-ahead has it.
    file: Option<File>,
    /// Bytes already read from the file but not yet returned, from `taken` on: a read whose
    /// caller went away leaves them here, the read-ahead appends to them, and the next read
    /// returns them first. The file's position is past them, which seeks and writes account for.
    pending: Vec<u8>,
    /// How much of `pending`'s front was already returned.
    taken: usize,
    /// Whether it is a regular file (the only kind read ahead); `None` until known.
    regular: Option<bool>,
    /// Opened for reading only, on a local file system: [`AsyncFile::close`] closes it on the
    /// calling thread instead of a worker's.
    cheap_close: bool,
    ahead: Ahead,
}

impl FileState {
    fn unread_len(&self) -> usize {
        self.pending.len() - self.taken
    }

    /// The unread bytes, moved out for a worker (which may seek back over them or append).
    fn take_unread(&mut self) -> Vec<u8> {
        let mut p = std::mem::take(&mut self.pending);
        p.drain(..self.taken);
        self.taken = 0;
        p
    }

    /// Appends bytes read after the unread ones; takes `buf`'s allocation when nothing is
    /// unread (no copy) and leaves `buf` empty either way.
    fn append(&mut self, buf: &mut Vec<u8>) {
        if self.unread_len() == 0 {
            self.pending.clear();
            self.taken = 0;
            std::mem::swap(&mut self.pending, buf);
        } else {
            self.pending.drain(..self.taken);
            self.taken = 0;
            self.pending.extend_from_slice(buf);
        }
        buf.clear();
    }
}

/// Read-ahead for sequential reads of a regular file, as the kernel and async-fs do: after two
/// full reads in a row, a worker keeps reading into `pending` while the caller takes from it,
/// so a read finds its bytes there instead of waiting for a worker. It runs outside the
/// file's turn and only with a token of the limiter free at that moment; any other operation
/// stops it and waits for the file back before it starts.
#[derive(Default)]
struct Ahead {
    /// A read-ahead worker has the file.
    running: bool,
    /// Asked to stop after its current read.
    stop: bool,
    /// It reached the end: the next read with nothing pending returns 0.
    eof: bool,
    /// Its read failed: the next read with nothing pending returns the error.
    error: Option<io::Error>,
    /// The reader waiting for its bytes, or the operation waiting for the file.
    waker: Option<Waker>,
    /// Full sequential reads in a row.
    streak: u8,
    /// The size of its next read: doubles from the caller's read size up to [`AHEAD_CHUNK`].
    chunk: usize,
}

/// The most one read-ahead system call asks for.
const AHEAD_CHUNK: usize = 1 << 20;
/// The read-ahead stops with this much unread, and starts again below half of it.
const AHEAD_WINDOW: usize = 2 << 20;

struct FileInner {
    path: Option<PathBuf>,
    /// The descriptor number, for the streams' typed attribute (meaningful until closed).
    fd: std::os::fd::RawFd,
    closed: std::sync::atomic::AtomicBool,
    state: Mutex<FileState>,
    /// One operation at a time, in order; its token is held by the worker until the
    /// operation is over, even if the caller went away.
    turn: Arc<CapacityLimiter>,
    limiter: Mutex<Option<Arc<CapacityLimiter>>>,
}

impl FileInner {
    fn state(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file whose operations run on worker threads (AnyIO's `AsyncFile`).
///
/// Made by [`open_file`], [`wrap_file`] or [`Path::open`](super::Path::open). Operations take
/// `&self` and run one at a time in the order they were called, so a file can be shared
/// between tasks (in an `Arc`).
///
/// Sequential reads of a regular file are read ahead: after two full reads in a row, a worker
/// (only one the limiter has free at that moment) reads on, up to 2 MiB past the caller, so
/// that later reads find their bytes without waiting for a worker. Nothing else shows it:
/// [`tell`](Self::tell), [`seek`](Self::seek) and writes use the caller's position, and any
/// other operation stops the read-ahead first. Pipes, sockets and devices are never read
/// ahead.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::io::SeekFrom;
/// use anyio::fs::{open_file, OpenOptions};
/// let path = std::env::temp_dir().join(format!("anyio-file-doc-{}", std::process::id()));
/// let f = open_file(&path, OpenOptions::from_mode("w+")?).await?;
/// f.write_all(b"0123456789").await?;
/// f.seek(SeekFrom::Start(3)).await?;
/// assert_eq!(f.read(4).await?, b"3456");
/// assert_eq!(f.tell().await?, 7);
/// f.close().await?;
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
pub struct AsyncFile {
    inner: Arc<FileInner>,
}

impl fmt::Debug for AsyncFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFile").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// The most one read asks the system for when the caller gives no size.
const CHUNK: usize = 64 * 1024;

impl AsyncFile {
    pub(crate) fn new(file: File, path: Option<PathBuf>) -> Self {
        AsyncFile {
            inner: Arc::new(FileInner {
                path,
                fd: std::os::fd::AsRawFd::as_raw_fd(&file),
                closed: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(FileState {
                    file: Some(file),
                    pending: Vec::new(),
                    taken: 0,
                    regular: None,
                    cheap_close: false,
                    ahead: Ahead::default(),
                }),
                turn: Arc::new(CapacityLimiter::new(1)),
                limiter: Mutex::new(None),
            }),
        }
    }

    /// Runs this file's operations under `limiter` instead of the run's default thread
    /// limiter (a limiter of 1 serialises them with every other user of that limiter).
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::sync::Arc;
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap())
    ///     .with_limiter(Arc::new(anyio::sync::CapacityLimiter::new(1)));
    /// assert_eq!(f.read(10).await?, b"");
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub fn with_limiter(self, limiter: Arc<CapacityLimiter>) -> Self {
        *self.inner.limiter.lock().unwrap_or_else(PoisonError::into_inner) = Some(limiter);
        self
    }

    /// The path it was opened with ([`wrap_file`]: `None`).
    ///
    /// ```
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// assert!(f.path().is_none());
    /// ```
    pub fn path(&self) -> Option<&StdPath> {
        self.inner.path.as_deref()
    }

    /// Runs `f` on the file on a worker, as this file's next operation in turn (not a read:
    /// it ends a run of sequential reads).
    async fn op<T: Send + 'static>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut File, &mut Vec<u8>) -> io::Result<T> + Send + 'static,
    ) -> Result<T, FsError> {
        let turn = self.turn().await?;
        self.inner.state().ahead.streak = 0;
        self.run_in_turn(turn, name, f).await.map(|(v, _turn)| v)
    }

    /// Runs `f` as [`op`](Self::op) does, in a turn the caller already holds, and returns the
    /// turn with the value: the caller holds it while it takes what the worker left in
    /// `pending` (if the caller went away, the value and the turn are dropped on the worker,
    /// and the bytes stay for the next read). `f` gets the unread bytes alone.
    async fn run_in_turn<T: Send + 'static>(
        &self,
        turn: OwnedCapacityToken,
        name: &'static str,
        f: impl FnOnce(&mut File, &mut Vec<u8>) -> io::Result<T> + Send + 'static,
    ) -> Result<(T, OwnedCapacityToken), FsError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.stop_read_ahead().await?;
        let inner = self.inner.clone();
        let limiter = self.limiter();
        let r = blocking(name, self.path(), false, limiter, move || {
            // Out of the lock for the system call, so that nothing on a runtime thread ever
            // waits for one; the turn keeps every other operation away meanwhile.
            let (file, mut pending) = {
                let mut st = inner.state();
                (st.file.take(), st.take_unread())
            };
            // Gone only if an earlier operation panicked while its worker held it: closed.
            let Some(mut file) = file else { return Ok(None) };
            let r = f(&mut file, &mut pending);
            let mut st = inner.state();
            st.file = Some(file);
            st.pending = pending;
            Ok(Some((r?, turn)))
        })
        .await?;
        r.ok_or_else(|| self.closed_error())
    }

    fn closed_error(&self) -> FsError {
        FsError::Closed { path: self.inner.path.clone() }
    }

    fn limiter(&self) -> Option<Arc<CapacityLimiter>> {
        self.inner.limiter.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for this file's turn.
    async fn turn(&self) -> Result<OwnedCapacityToken, FsError> {
        match self.inner.turn.acquire_owned().await {
            Ok(t) => Ok(t),
            Err(CapacityLimiterError::Cancelled(c)) => Err(FsError::Cancelled(c)),
            Err(other) => unreachable!("an anonymous borrower cannot already hold a token: {other}"),
        }
    }

    /// Stops a read-ahead in progress and waits for it to give the file back (after its
    /// current system call); what it read stays pending. A failure or end it met is dropped:
    /// the operation about to run sees the file for itself.
    async fn stop_read_ahead(&self) -> Result<(), FsError> {
        let poll = |waker: Option<&Waker>| {
            let mut st = self.inner.state();
            if !st.ahead.running {
                st.ahead.eof = false;
                st.ahead.error = None;
                return Poll::Ready(());
            }
            st.ahead.stop = true;
            if let Some(w) = waker {
                st.ahead.waker = Some(w.clone());
            }
            Poll::Pending
        };
        if poll(None).is_ready() {
            return Ok(());
        }
        crate::cancel::cancellable(std::future::poll_fn(|cx| poll(Some(cx.waker()))))
            .await
            .map_err(FsError::Cancelled)
    }

    /// What a read in turn finds before it asks a worker: pending bytes (waiting for a running
    /// read-ahead to bring some), the end or a failure the read-ahead met, or nothing.
    async fn buffered(&self) -> Result<Buffered, FsError> {
        let poll = |waker: Option<&Waker>| {
            let mut st = self.inner.state();
            if st.unread_len() > 0 {
                return Poll::Ready(Ok(Buffered::Bytes));
            }
            if st.ahead.running {
                if let Some(w) = waker {
                    st.ahead.waker = Some(w.clone());
                }
                return Poll::Pending;
            }
            if let Some(e) = st.ahead.error.take() {
                st.ahead.streak = 0;
                return Poll::Ready(Err(FsError::io("read", self.path(), e)));
            }
            if std::mem::take(&mut st.ahead.eof) {
                st.ahead.streak = 0;
                return Poll::Ready(Ok(Buffered::End));
            }
            Poll::Ready(Ok(Buffered::Nothing))
        };
        if let Poll::Ready(r) = poll(None) {
            return r;
        }
        crate::cancel::cancellable(std::future::poll_fn(|cx| poll(Some(cx.waker())))).await?
    }

    /// Counts a read of `asked` bytes in turn that was `full` (not cut short by the end of the
    /// file), and starts the read-ahead once reads look sequential.
    fn after_read(&self, full: bool, asked: usize) {
        let mut st = self.inner.state();
        if !full || st.regular != Some(true) {
            st.ahead.streak = 0;
            return;
        }
        st.ahead.streak = st.ahead.streak.saturating_add(1);
        if st.ahead.streak < 2
            || st.ahead.running
            || st.ahead.eof
            || st.ahead.error.is_some()
            || st.unread_len() >= AHEAD_WINDOW / 2
            || st.file.is_none()
        {
            return;
        }
        // Only with a worker free now: read-ahead never waits for, nor crowds out, real work.
        let limiter = self.limiter().unwrap_or_else(crate::to_thread::current_default_thread_limiter);
        let Ok(token) = limiter.try_acquire() else { return };
        let token = token.into_owned(limiter.clone());
        st.ahead.running = true;
        st.ahead.stop = false;
        if st.ahead.chunk == 0 {
            st.ahead.chunk = asked.clamp(4096, AHEAD_CHUNK);
        }
        let file = st.file.take();
        drop(st);
        let job = ReadAhead { inner: self.inner.clone(), file, _token: token };
        // Refused (no thread): dropping the job gives the file back.
        let _ = crate::thread::pool::submit(Box::new(move || job.run()));
    }

    /// Takes up to `max` pending bytes. Only in turn: a worker may hold them meanwhile. When
    /// they all fit, the buffer itself is returned (no copy).
    fn take_pending(&self, max: usize) -> Vec<u8> {
        let mut st = self.inner.state();
        if st.taken == 0 && st.pending.len() <= max {
            return std::mem::take(&mut st.pending);
        }
        let n = max.min(st.unread_len());
        let out = st.pending[st.taken..st.taken + n].to_vec();
        st.taken += n;
        out
    }

    /// Copies up to `buf.len()` pending bytes into `buf`, keeping the buffer's capacity for the
    /// next read (no allocation per read).
    fn copy_pending(&self, buf: &mut [u8]) -> usize {
        let mut st = self.inner.state();
        let n = buf.len().min(st.unread_len());
        buf[..n].copy_from_slice(&st.pending[st.taken..st.taken + n]);
        st.taken += n;
        if st.taken == st.pending.len() {
            st.pending.clear();
            st.taken = 0;
        }
        n
    }

    /// Has the worker read up to `max` bytes into the (empty) pending buffer, in the caller's
    /// turn, and returns the turn, held while the caller takes them.
    async fn fill_pending(
        &self,
        turn: OwnedCapacityToken,
        max: usize,
    ) -> Result<OwnedCapacityToken, FsError> {
        let need_kind = self.inner.state().regular.is_none();
        let (kind, turn) = self
            .run_in_turn(turn, "read", move |file, pending| {
                read_up_to(file, pending, max)?;
                // A wrapped file's kind, learnt once: only regular files are read ahead.
                Ok(need_kind.then(|| file.metadata().is_ok_and(|m| m.is_file())))
            })
            .await?;
        if let Some(regular) = kind {
            self.inner.state().regular = Some(regular);
        }
        Ok(turn)
    }

    /// Reads up to `max_bytes` (fewer only at the end of the file); empty at the end (Python's
    /// `read(n)`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path, [`FsError::Closed`](FsError::Closed), [`FsError::Cancelled`] before it
    /// started, [`FsError::InvalidArgument`] for a `max_bytes` of 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a read cancelled or dropped while its worker runs keeps what the worker
    /// read, and the next read returns it first.
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/zero").unwrap());
    /// assert_eq!(f.read(3).await?, vec![0, 0, 0]);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn read(&self, max_bytes: usize) -> Result<Vec<u8>, FsError> {
        if max_bytes == 0 {
            return Err(FsError::InvalidArgument("max_bytes must be at least 1".into()));
        }
        crate::lowlevel::checkpoint_if_cancelled()?;
        let mut turn = self.turn().await?;
        let full = match self.buffered().await? {
            Buffered::Bytes => true,
            Buffered::End => return Ok(Vec::new()),
            Buffered::Nothing => {
                // The worker leaves what it read in `pending`, and this takes it back under the
                // turn: if the caller is gone by then, it stays for the next read.
                turn = self.fill_pending(turn, max_bytes).await?;
                self.inner.state().unread_len() == max_bytes
            }
        };
        let data = self.take_pending(max_bytes);
        self.after_read(full, max_bytes);
        drop(turn);
        Ok(data)
    }

    /// Reads into `buf`; returns how many bytes (0 at the end of the file).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/zero").unwrap());
    /// let mut buf = [1u8; 4];
    /// assert_eq!(f.read_into(&mut buf).await?, 4);
    /// assert_eq!(buf, [0; 4]);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "readinto")]
    pub async fn read_into(&self, buf: &mut [u8]) -> Result<usize, FsError> {
        if buf.is_empty() {
            return Err(FsError::InvalidArgument("the buffer must hold at least 1 byte".into()));
        }
        crate::lowlevel::checkpoint_if_cancelled()?;
        let mut turn = self.turn().await?;
        let full = match self.buffered().await? {
            Buffered::Bytes => true,
            Buffered::End => return Ok(0),
            Buffered::Nothing => {
                turn = self.fill_pending(turn, buf.len()).await?;
                self.inner.state().unread_len() == buf.len()
            }
        };
        let n = self.copy_pending(buf);
        self.after_read(full, buf.len());
        drop(turn);
        Ok(n)
    }

    /// Reads everything from the current position to the end.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// assert!(f.read_to_end().await?.is_empty());
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_to_end(&self) -> Result<Vec<u8>, FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let turn = self.turn().await?;
        self.inner.state().ahead.streak = 0;
        let ((), _turn) = self
            .run_in_turn(turn, "read", |file, pending| {
                file.read_to_end(pending)?;
                Ok(())
            })
            .await?;
        Ok(self.take_pending(usize::MAX))
    }

    /// Reads everything from the current position to the end as UTF-8 text.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), and [`FsError::Io`] with `InvalidData` if it is not UTF-8.
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// assert_eq!(f.read_to_string().await?, "");
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_to_string(&self) -> Result<String, FsError> {
        let bytes = self.read_to_end().await?;
        String::from_utf8(bytes)
            .map_err(|e| FsError::io("decode", self.path(), io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Writes all of `data`, returning once the system has it (AnyIO's meaning: no
    /// write-behind whose error would surface later).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (a full disk: `StorageFull`), [`FsError::Closed`](FsError::Closed),
    /// [`FsError::Cancelled`] before it started.
    ///
    /// # Cancel safety
    ///
    /// Not abandoned once started: a cancelled write still completes and returns; the next
    /// checkpoint raises the cancellation.
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap());
    /// f.write_all(b"gone").await?;
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "write")]
    pub async fn write_all(&self, data: &[u8]) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let data = data.to_vec();
        self.op("write", move |file, pending| {
            unread(file, pending)?;
            file.write_all(&data)
        })
        .await
    }

    /// Moves the position (as `std::io::Seek`); returns the new one.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::TemporaryFile::new().await?;
    /// f.write_all(b"0123456789abcdef").await?;
    /// assert_eq!(f.seek(std::io::SeekFrom::Start(10)).await?, 10);
    /// assert_eq!(f.read(3).await?, b"abc");
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn seek(&self, pos: SeekFrom) -> Result<u64, FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("seek", move |file, pending| {
            unread(file, pending)?;
            file.seek(pos)
        })
        .await
    }

    /// The current position, counting bytes read for a caller that went away as not read.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it changes nothing.
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// assert_eq!(f.tell().await?, 0);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "stream_position")]
    pub async fn tell(&self) -> Result<u64, FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("tell", |file, pending| Ok(file.stream_position()? - pending.len() as u64)).await
    }

    /// Flushes what the process buffers (nothing, for a plain file: writes are not buffered
    /// here) — see [`sync_all`](Self::sync_all) for the disk.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap());
    /// f.flush().await?;
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn flush(&self) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("flush", |file, _| file.flush()).await
    }

    /// Waits until the data and metadata are on the disk (`fsync`).
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// ```
    /// # anyio::run(async {
    /// let path = std::env::temp_dir().join(format!("anyio-sync-{}", std::process::id()));
    /// let f = anyio::fs::wrap_file(std::fs::File::create(&path).unwrap());
    /// f.write_all(b"durable").await?;
    /// f.sync_all().await?;
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_all(&self) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("sync", |file, _| file.sync_all()).await
    }

    /// Waits until the data is on the disk (`fdatasync`).
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// As [`write_all`](Self::write_all).
    pub async fn sync_data(&self) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("sync", |file, _| file.sync_data()).await
    }

    /// Truncates or extends the file to `size` bytes (Python's `truncate(size)`).
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// ```
    /// # anyio::run(async {
    /// let path = std::env::temp_dir().join(format!("anyio-setlen-{}", std::process::id()));
    /// let f = anyio::fs::wrap_file(std::fs::File::create(&path).unwrap());
    /// f.set_len(100).await?;
    /// assert_eq!(f.metadata().await?.len(), 100);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "truncate")]
    pub async fn set_len(&self, size: u64) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("truncate", move |file, _| file.set_len(size)).await
    }

    /// The file's metadata (`fstat`).
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it changes nothing.
    pub async fn metadata(&self) -> Result<std::fs::Metadata, FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.op("stat", |file, _| file.metadata()).await
    }

    /// The file's lines, as a [`Stream`] of `Result<String, FsError>`, without their line
    /// endings (`\n` or `\r\n`; Python keeps them). Reads 64 KiB at a time; a last line without
    /// a newline is yielded too.
    ///
    /// ```
    /// # anyio::run(async {
    /// use futures::StreamExt;
    /// let path = std::env::temp_dir().join(format!("anyio-lines-{}", std::process::id()));
    /// std::fs::write(&path, "a\nbb\r\nccc").unwrap();
    /// let f = anyio::fs::open_file(&path, anyio::fs::OpenOptions::from_mode("r")?).await?;
    /// let lines: Vec<String> = f.lines().map(|l| l.unwrap()).collect().await;
    /// assert_eq!(lines, ["a", "bb", "ccc"]);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub fn lines(&self) -> impl Stream<Item = Result<String, FsError>> + Send + '_ {
        futures_util::stream::unfold((Vec::new(), false), move |(mut buf, mut eof)| async move {
            loop {
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    let mut line: Vec<u8> = buf.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some((self.decode(line), (buf, eof)));
                }
                if eof {
                    if buf.is_empty() {
                        return None;
                    }
                    let line = std::mem::take(&mut buf);
                    return Some((self.decode(line), (buf, eof)));
                }
                match self.read(CHUNK).await {
                    Ok(chunk) if chunk.is_empty() => eof = true,
                    Ok(chunk) => buf.extend_from_slice(&chunk),
                    Err(e) => return Some((Err(e), (Vec::new(), true))),
                }
            }
        })
    }

    fn decode(&self, line: Vec<u8>) -> Result<String, FsError> {
        String::from_utf8(line)
            .map_err(|e| FsError::io("decode", self.path(), io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Closes the file. Later operations fail with [`FsError::Closed`](FsError::Closed);
    /// closing again does nothing. A file opened by [`open_file`] for reading only, on a local
    /// file system, closes on the calling thread (nothing to write back, no server to tell);
    /// any other closes on a worker, as closing can block on network file systems.
    ///
    /// # Errors
    ///
    /// [`FsError::Cancelled`] if cancelled while waiting for an operation in progress (then
    /// nothing was closed).
    ///
    /// # Cancel safety
    ///
    /// Once its turn came, the file is closed even if the caller is cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// f.close().await?;
    /// assert!(matches!(f.read(1).await, Err(anyio::fs::FsError::Closed { .. })));
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "aclose")]
    pub async fn close(&self) -> Result<(), FsError> {
        let turn = self.turn().await?;
        self.stop_read_ahead().await?;
        if self.inner.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let (file, cheap_close) = {
            let mut st = self.inner.state();
            st.pending = Vec::new();
            st.taken = 0;
            (st.file.take(), st.cheap_close)
        };
        if cheap_close {
            // Nothing to flush and no server to tell: closing cannot block (tokio closes every
            // file it drops this way).
            drop(file);
            return Ok(());
        }
        let limiter = self.limiter();
        let r = blocking("close", self.path(), false, limiter, move || {
            let _turn = turn;
            drop(file);
            Ok(())
        })
        .await;
        match r {
            Err(FsError::Cancelled(_)) => Ok(()), // the file is closed all the same
            other => other,
        }
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// let f = anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap());
    /// assert!(!f.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The descriptor number, while open.
    pub(crate) fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        (!self.is_closed()).then_some(self.inner.fd)
    }
}

/// What a read in turn found before asking a worker.
enum Buffered {
    Bytes,
    End,
    Nothing,
}

/// Reads into `buf`'s spare room until `max` more bytes arrived or the end, one system call
/// per read (std's `read_to_end` starts at 8 KiB and doubles, several calls per 64 KiB).
fn read_up_to(file: &mut File, buf: &mut Vec<u8>, max: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let end = buf.len() + max;
    buf.reserve(max);
    while buf.len() < end {
        let room = end - buf.len();
        // SAFETY: the spare capacity holds at least `room` bytes (reserved above), read(2)
        // writes at most `room` bytes there, and only the `n` it wrote become part of `buf`.
        let n = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), room) };
        match n {
            0 => break,
            // SAFETY: read(2) initialised these `n` bytes, within the capacity.
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Whether closing `file` can be done on a runtime thread: opened for reading only (nothing
/// to write back) on a local file system (network and FUSE file systems may talk to a server
/// on close).
fn closes_without_blocking(file: &File) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: F_GETFL only reads the flags of `fd`, which `file` keeps open.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || flags & libc::O_ACCMODE != libc::O_RDONLY {
            return false;
        }
        // SAFETY: statfs is plain old data, for which all zeroes is a valid value.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs only fills the struct it is given, for the open `fd`.
        if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
            return false;
        }
        // NFS, SMB, SMB2, CIFS, FUSE, Ceph, AFS, 9P, Coda, OCFS2, GFS2, Lustre.
        const REMOTE: [i64; 12] = [
            0x6969,
            0x517B,
            0xFE53_4D42,
            0xFF53_4D42,
            0x6573_5546,
            0x00C3_6400,
            0x5346_414F,
            0x0102_1997,
            0x7375_7245,
            0x7461_636F,
            0x0116_1970,
            0x0BD0_0BD0,
        ];
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
        let kind = fs.f_type as i64 & 0xFFFF_FFFF;
        !REMOTE.contains(&kind)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = file;
        false
    }
}

/// A read-ahead in progress: holds the file (outside any operation's turn) and a token of the
/// limiter. Dropped, even by a panic or a refused thread, it gives the file back and wakes
/// whoever waits.
struct ReadAhead {
    inner: Arc<FileInner>,
    file: Option<File>,
    _token: OwnedCapacityToken,
}

impl ReadAhead {
    fn run(mut self) {
        let mut buf = Vec::new();
        let Some(file) = self.file.as_mut() else { return };
        loop {
            let chunk = {
                let st = self.inner.state();
                if st.ahead.stop || st.unread_len() >= AHEAD_WINDOW {
                    return;
                }
                st.ahead.chunk
            };
            let r = read_up_to(file, &mut buf, chunk);
            let waker = {
                let mut st = self.inner.state();
                match r {
                    Ok(()) if buf.is_empty() => {
                        st.ahead.eof = true;
                        return;
                    }
                    Ok(()) => {
                        st.append(&mut buf);
                        st.ahead.chunk = (chunk * 2).min(AHEAD_CHUNK);
                        st.ahead.waker.take()
                    }
                    Err(e) => {
                        st.ahead.error = Some(e);
                        return;
                    }
                }
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.inner.state();
            if let Some(file) = self.file.take() {
                st.file = Some(file);
            }
            st.ahead.running = false;
            st.ahead.stop = false;
            st.ahead.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for AsyncFile {
    fn drop(&mut self) {
        // A read-ahead in progress stops after its current read; the file closes when it does.
        self.inner.state().ahead.stop = true;
    }
}

/// Moves the position back over bytes read for a caller that went away, before an operation
/// that uses the position (a write, a seek).
fn unread(file: &mut File, pending: &mut Vec<u8>) -> io::Result<()> {
    if !pending.is_empty() {
        file.seek(SeekFrom::Current(-(pending.len() as i64)))?;
        pending.clear();
    }
    Ok(())
}
