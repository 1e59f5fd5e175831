//! `Path` and the temporary files on every backend: AnyIO's tests/test_fileio.py (`TestPath`'s
//! filesystem cases) and tests/test_tempfile.py, plus iterdir over 10,000 entries and the
//! typed errors of bad input.
#![cfg(unix)]

use anyio::fs::{
    gettempdir, mkdtemp, mkstemp, FsError, NamedTemporaryFile, OpenOptions, Path, SpooledTemporaryFile,
    TemporaryDirectory, TemporaryFile,
};
use futures::StreamExt;

mod support;
use support::guarded_ok;

#[anyio::test]
async fn kind_tests_and_stat() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let file = dir.path().join("f");
        file.write_bytes(b"12345".to_vec()).await?;
        let link = dir.path().join("link");
        link.symlink_to(&*file).await?;
        assert!(file.exists().await? && file.is_file().await? && !file.is_dir().await?);
        assert!(dir.path().is_dir().await? && !dir.path().is_file().await?);
        assert!(link.is_symlink().await? && link.is_file().await?);
        assert!(!file.is_symlink().await?);
        assert!(!dir.path().join("nope").exists().await?);
        assert!(!file.is_fifo().await? && !file.is_socket().await? && !file.is_block_device().await?);
        assert!(Path::new("/dev/null").is_char_device().await?);
        assert_eq!(file.stat().await?.len(), 5);
        assert!(link.lstat().await?.file_type().is_symlink());
        assert_eq!(link.readlink().await?.as_os_str(), file.as_os_str());
        assert!(link.samefile(&*file).await?);
        assert_eq!(link.resolve().await?, file.resolve().await?);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn read_write_mkdir_rename_unlink_and_friends() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let sub = dir.path().join("a/b/c");
        let e = sub.mkdir(false, false).await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::NotFound));
        sub.mkdir(true, false).await?;
        sub.mkdir(true, true).await?;
        assert_eq!(sub.mkdir(true, false).await.unwrap_err().kind(), Some(std::io::ErrorKind::AlreadyExists));
        assert_eq!(
            sub.mkdir(false, false).await.unwrap_err().kind(),
            Some(std::io::ErrorKind::AlreadyExists)
        );
        let f = sub.join("t.txt");
        f.write_text("héllo").await?;
        assert_eq!(f.read_text().await?, "héllo");
        assert_eq!(f.read_bytes().await?, "héllo".as_bytes());
        f.chmod(0o600).await?;
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.stat().await?.permissions().mode() & 0o777, 0o600);
        let moved = f.rename(dir.path().join("moved.txt")).await?;
        assert!(!f.exists().await? && moved.exists().await?);
        let copy = dir.path().join("copy.txt");
        assert_eq!(moved.copy(&*copy).await?, 6);
        let again = copy.move_to(dir.path().join("again.txt")).await?;
        assert_eq!(again.read_text().await?, "héllo");
        let hard = dir.path().join("hard");
        hard.hardlink_to(&*again).await?;
        assert!(hard.samefile(&*again).await?);
        let touched = dir.path().join("touched");
        touched.touch(true).await?;
        touched.touch(true).await?;
        assert_eq!(touched.touch(false).await.unwrap_err().kind(), Some(std::io::ErrorKind::AlreadyExists));
        touched.unlink(false).await?;
        assert_eq!(touched.unlink(false).await.unwrap_err().kind(), Some(std::io::ErrorKind::NotFound));
        touched.unlink(true).await?;
        assert!(dir.path().join("a").rmdir().await.is_err(), "not empty");
        dir.path().join("a").remove_tree().await?;
        let f = moved.open(OpenOptions::from_mode("r")?).await?;
        assert_eq!(f.read_to_string().await?, "héllo");
        assert!(Path::cwd().await?.is_absolute());
        assert_eq!(Path::new("rel").absolute().await?, Path::cwd().await?.join("rel"));
        assert!(Path::new("/").is_mount().await? && !dir.path().join("again.txt").is_mount().await?);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn iterdir_lists_ten_thousand_entries_in_batches() {
    // Setup outside the hang guard (a loaded machine may take seconds to make the entries),
    // with hard links to one file: directory entries without 10,000 inodes.
    let dir = TemporaryDirectory::new().await.unwrap();
    let root = dir.path().clone();
    anyio::to_thread::run_sync(move || {
        let one = root.join("e0");
        std::fs::File::create(&one).unwrap();
        for i in 1..10_000 {
            std::fs::hard_link(&one, root.join(format!("e{i}"))).unwrap();
        }
    })
    .await
    .unwrap();
    guarded_ok(async {
        let mut names: Vec<String> = dir
            .path()
            .iterdir()
            .map(|p| p.unwrap().file_name().unwrap().to_string_lossy().into_owned())
            .collect()
            .await;
        names.sort();
        assert_eq!(names.len(), 10_000);
        assert!(names.binary_search(&"e9999".to_string()).is_ok());
        Ok(())
    })
    .await
}

#[anyio::test]
async fn iterdir_on_a_file_or_a_missing_path_is_an_error_naming_it() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let file = dir.path().join("plain");
        file.touch(true).await?;
        let items: Vec<_> = file.iterdir().collect().await;
        assert_eq!(items.len(), 1);
        let e = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::NotADirectory), "{e}");
        assert_eq!(e.path(), Some(&*file));
        let missing: Vec<_> = dir.path().join("missing").iterdir().collect().await;
        assert!(matches!(&missing[..], [Err(e)] if e.kind() == Some(std::io::ErrorKind::NotFound)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn glob_and_walk() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        // A directory whose own name looks like a pattern: it is taken literally.
        let root = &dir.path().join("[odd]*");
        root.join("x/y").mkdir(true, false).await?;
        for f in ["a.rs", "b.txt", "x/c.rs", "x/y/d.rs", ".hidden.rs"] {
            root.join(f).touch(true).await?;
        }
        // A link to a directory, and a loop: neither is followed.
        root.join("x/link").symlink_to(&*root.join("x/y")).await?;
        root.join("x/loop").symlink_to("..").await?;
        let top: Vec<_> =
            root.glob("*.rs").await?.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(top, [".hidden.rs", "a.rs"]);
        let all: Vec<_> =
            root.glob("**/*.rs").await?.iter().map(|p| p.strip_prefix(&**root).unwrap().to_owned()).collect();
        let want: Vec<std::path::PathBuf> =
            [".hidden.rs", "a.rs", "x/c.rs", "x/y/d.rs"].iter().map(Into::into).collect();
        assert_eq!(all, want);
        assert_eq!(root.rglob("*.rs").await?, root.glob("**/*.rs").await?);
        assert!(matches!(root.glob("[").await, Err(FsError::InvalidArgument(_))));
        let walked: Vec<_> = root.walk().map(|r| r.unwrap()).collect().await;
        let dirs: Vec<_> =
            walked.iter().map(|(d, _, _)| d.strip_prefix(&**root).unwrap().to_owned()).collect();
        assert_eq!(dirs, [std::path::PathBuf::from(""), "x".into(), "x/y".into()]);
        assert_eq!(walked[0].1, ["x"]);
        assert_eq!(walked[0].2, [".hidden.rs", "a.rs", "b.txt"]);
        // walk lists the links with the files and does not enter them.
        assert_eq!(walked[1].2, ["c.rs", "link", "loop"]);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn temporary_files_and_directories_clean_up() {
    guarded_ok(async {
        assert!(gettempdir().await?.is_dir().await?);
        let t = TemporaryFile::new().await?;
        t.write_all(b"anon").await?;
        t.seek(std::io::SeekFrom::Start(0)).await?;
        assert_eq!(t.read_to_end().await?, b"anon");
        t.close().await?;

        let named = NamedTemporaryFile::new("anyio-", ".tmp").await?;
        let path = named.path().clone();
        assert!(path.file_name().unwrap().to_str().unwrap().ends_with(".tmp"));
        named.write_all(b"x").await?;
        drop(named);
        assert!(!path.exists().await?, "removed on drop");
        let kept = NamedTemporaryFile::new("anyio-", "").await?;
        kept.keep();
        let kept_path = kept.path().clone();
        kept.close().await?;
        assert!(kept_path.exists().await?);
        kept_path.unlink(false).await?;

        let spooled = SpooledTemporaryFile::new(10);
        spooled.write_all(b"12345").await?;
        assert!(!spooled.is_rolled_over());
        spooled.rollover().await?;
        assert!(spooled.is_rolled_over());
        spooled.seek(std::io::SeekFrom::Start(1)).await?;
        assert_eq!(spooled.read(2).await?, b"23");
        spooled.close().await?;
        assert!(matches!(spooled.read(1).await, Err(FsError::Closed { .. })));

        let d = TemporaryDirectory::new().await?;
        let dpath = d.path().clone();
        dpath.join("inner").write_text("x").await?;
        drop(d);
        assert!(!dpath.exists().await?, "removed with its contents on drop");

        let (f, p) = mkstemp("anyio-", ".s", None).await?;
        f.write_all(b"k").await?;
        f.close().await?;
        assert_eq!(p.read_bytes().await?, b"k");
        p.unlink(false).await?;
        let dd = mkdtemp("anyio-", "", None).await?;
        assert!(dd.is_dir().await?);
        dd.rmdir().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn the_other_kind_tests_positive_and_a_dangling_link() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string path; mkfifo has no memory effects.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(fifo.is_fifo().await? && !fifo.is_file().await?);
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&*sock)?;
        assert!(sock.is_socket().await?);
        let dangling = dir.path().join("dangling");
        dangling.symlink_to(dir.path().join("nowhere")).await?;
        assert!(!dangling.exists().await? && dangling.is_symlink().await?);
        assert!(dangling.lstat().await?.file_type().is_symlink());
        assert_eq!(dangling.stat().await.unwrap_err().kind(), Some(std::io::ErrorKind::NotFound));
        // resolve is strict (Python's strict=True): a missing path is an error naming it.
        let missing = dir.path().join("nodir/../nofile");
        let e = missing.resolve().await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::NotFound));
        assert_eq!(e.path(), Some(&*missing));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn home_cwd_rename_over_a_file_and_move() {
    guarded_ok(async {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(Path::home().await?, Path::new(home));
        }
        assert_eq!(Path::cwd().await?, Path::new(std::env::current_dir()?));
        let dir = TemporaryDirectory::new().await?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        a.write_text("new").await?;
        b.write_text("old").await?;
        let moved = a.rename(&*b).await?;
        assert_eq!(moved, b);
        assert_eq!(b.read_text().await?, "new", "rename replaced the file (Python's replace)");
        assert!(!a.exists().await?);
        let c = b.move_to(dir.path().join("c")).await?;
        assert!(!b.exists().await? && c.read_text().await? == "new");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn temporary_file_details() {
    guarded_ok(async {
        assert_eq!(gettempdir().await?, Path::new(std::env::temp_dir()));
        let (f, p) = mkstemp("anyio-pre", ".suf", None).await?;
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("anyio-pre") && name.ends_with(".suf"), "{name}");
        f.close().await?;
        p.unlink(false).await?;

        // Closing a NamedTemporaryFile removes it; the file is then closed.
        let named = NamedTemporaryFile::new("anyio-", "").await?;
        let path = named.path().clone();
        named.close().await?;
        assert!(!path.exists().await?);
        assert!(matches!(named.write_all(b"x").await, Err(FsError::Closed { .. })));

        // A spooled file rolls over by itself past its limit, not at it.
        let s = SpooledTemporaryFile::new(10);
        s.write_all(b"0123456789").await?;
        assert!(!s.is_rolled_over());
        s.write_all(b"x").await?;
        assert!(s.is_rolled_over());
        s.seek(std::io::SeekFrom::Start(0)).await?;
        assert_eq!(s.read_to_end().await?, b"0123456789x");

        // cleanup removes the directory; again is a no-op, and the drop after it too.
        let d = TemporaryDirectory::new().await?;
        d.path().join("f").write_text("x").await?;
        let kept = d.path().clone();
        d.cleanup().await?;
        assert!(!kept.exists().await?);
        d.cleanup().await?;
        drop(d);
        Ok(())
    })
    .await
}
