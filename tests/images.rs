//! End-to-end tests of crust's CRI ImageService: a real daemon, a real registry
//! (docker-registry), images built in memory. Each test has its own registry and daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{Context, Result};
use common::*;
use crust_proto::cri::{
    ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    PullImageRequest, RemoveImageRequest,
};
use tonic::Code;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn pull(env: &Env, image: &str) -> Result<String, tonic::Status> {
    let mut c = env
        .daemon
        .images()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(c.pull_image(PullImageRequest {
        image: spec(image),
        ..Default::default()
    })
    .await?
    .into_inner()
    .image_ref)
}

async fn status(env: &Env, image: &str) -> Result<Option<crust_proto::cri::Image>> {
    let mut c = env.daemon.images().await?;
    Ok(c.image_status(ImageStatusRequest {
        image: spec(image),
        verbose: false,
    })
    .await?
    .into_inner()
    .image)
}

async fn remove(env: &Env, image: &str) -> Result<()> {
    let mut c = env.daemon.images().await?;
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(())
}

async fn list(env: &Env) -> Result<Vec<crust_proto::cri::Image>> {
    let mut c = env.daemon.images().await?;
    Ok(c.list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images)
}

async fn fs_used(env: &Env) -> Result<(u64, u64)> {
    let mut c = env.daemon.images().await?;
    let r = c.image_fs_info(ImageFsInfoRequest {}).await?.into_inner();
    let fs = r.image_filesystems.first().context("no image filesystem")?;
    assert!(
        !fs.fs_id
            .as_ref()
            .map(|f| f.mountpoint.clone())
            .unwrap_or_default()
            .is_empty()
    );
    Ok((
        fs.used_bytes.as_ref().map(|v| v.value).unwrap_or(0),
        fs.inodes_used.as_ref().map(|v| v.value).unwrap_or(0),
    ))
}

fn simple_image(label: &str) -> Result<Image> {
    build_image(
        vec![busybox_layer()?],
        &ImageOpts {
            label: Some(label.into()),
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_multi_layer_status_list_by_tag_id_and_digest() -> Result<()> {
    let env = Env::new().await?;
    let l2 = LayerBuilder::new()
        .dir("app")?
        .file("app/hello.txt", b"hello\n", 0o644)?
        .finish(Comp::Gzip)?;
    let l3 = LayerBuilder::new()
        .dir("app")?
        .file("app/second.txt", b"2\n", 0o600)?
        .finish(Comp::Gzip)?;
    let img = build_image(
        vec![busybox_layer()?, l2.clone(), l3],
        &ImageOpts::default(),
    )?;
    push_image(&env.registry, "multi/img", "v1", &img)?;

    let (bytes0, inodes0) = fs_used(&env).await?;
    let r = pull(&env, &env.r("multi/img:v1")).await?;
    assert_eq!(r, img.id());
    let (bytes1, inodes1) = fs_used(&env).await?;
    assert!(
        bytes1 > bytes0,
        "image fs used bytes must grow: {bytes0} -> {bytes1}"
    );
    assert!(
        inodes1 > inodes0,
        "image fs inodes must grow: {inodes0} -> {inodes1}"
    );

    let by_digest = format!("{}@{}", env.r("multi/img"), img.manifest_digest);
    for name in [
        env.r("multi/img:v1"),
        img.id().to_string(),
        by_digest.clone(),
    ] {
        let st = status(&env, &name)
            .await?
            .with_context(|| format!("status {name}"))?;
        assert_eq!(st.id, img.id(), "{name}");
        assert!(
            st.repo_tags.contains(&env.r("multi/img:v1")),
            "{:?}",
            st.repo_tags
        );
        assert!(
            st.repo_digests.contains(&by_digest),
            "{:?}",
            st.repo_digests
        );
        assert!(st.size > 1_000_000, "size {}", st.size);
    }
    let all = list(&env).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, img.id());

    // Filtered list.
    let mut c = env.daemon.images().await?;
    let f = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&env.r("multi/img:v1")),
            }),
        })
        .await?
        .into_inner();
    assert_eq!(f.images.len(), 1);
    let f = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&env.r("nope:v1")),
            }),
        })
        .await?
        .into_inner();
    assert!(f.images.is_empty());

    assert_eq!(env.daemon.layer_dirs().len(), 3);
    let d2 = env.daemon.layer_diff(l2.diff_hex());
    assert_eq!(std::fs::read(d2.join("app/hello.txt"))?, b"hello\n");

    // Pull by digest works too.
    assert_eq!(pull(&env, &by_digest).await?, img.id());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whiteouts_and_opaque_dirs_become_overlay_whiteouts() -> Result<()> {
    let env = Env::new().await?;
    let l1 = LayerBuilder::new()
        .dir("etc")?
        .file("etc/x", b"x", 0o644)?
        .dir("data")?
        .file("data/a", b"a", 0o644)?
        .file("data/b", b"b", 0o644)?
        .finish(Comp::Gzip)?;
    let l2 = LayerBuilder::new()
        .dir("etc")?
        .whiteout("etc/x")?
        .dir("data")?
        .opaque("data")?
        .file("data/c", b"c", 0o644)?
        .finish(Comp::Gzip)?;
    let img = build_image(
        vec![busybox_layer()?, l1, l2.clone()],
        &ImageOpts::default(),
    )?;
    push_image(&env.registry, "wh/img", "v1", &img)?;
    assert_eq!(pull(&env, &env.r("wh/img:v1")).await?, img.id());

    let d = env.daemon.layer_diff(l2.diff_hex());
    let x = std::fs::symlink_metadata(d.join("etc/x")).context("etc/x whiteout")?;
    assert!(
        x.file_type().is_char_device(),
        "etc/x must be a 0/0 char device"
    );
    assert_eq!(x.rdev(), 0);
    assert!(!d.join("etc/.wh.x").exists());
    assert!(!d.join("data/.wh..wh..opq").exists());
    let opq = rustix::fs::getxattr(d.join("data"), "trusted.overlay.opaque", &mut [0u8; 8][..])
        .context("trusted.overlay.opaque xattr on data/")?;
    assert_eq!(opq, 1);
    assert_eq!(std::fs::read(d.join("data/c"))?, b"c");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardlinks_share_inodes_and_zstd_layers_unpack() -> Result<()> {
    let env = Env::new().await?;
    let hl = LayerBuilder::new()
        .dir("h")?
        .file("h/a", b"same inode", 0o644)?
        .hardlink("h/b", "h/a")?
        .finish(Comp::Gzip)?;
    let z = LayerBuilder::new()
        .dir("z")?
        .file("z/zstd.txt", b"zstd layer", 0o644)?
        .finish(Comp::Zstd)?;
    let img = build_image(
        vec![busybox_layer()?, hl.clone(), z.clone()],
        &ImageOpts::default(),
    )?;
    push_image(&env.registry, "links/img", "v1", &img)?;
    assert_eq!(pull(&env, &env.r("links/img:v1")).await?, img.id());

    let d = env.daemon.layer_diff(hl.diff_hex());
    let a = std::fs::metadata(d.join("h/a"))?;
    let b = std::fs::metadata(d.join("h/b"))?;
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    let zd = env.daemon.layer_diff(z.diff_hex());
    assert_eq!(std::fs::read(zd.join("z/zstd.txt"))?, b"zstd layer");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_selects_host_platform_and_docker_schema2_pulls() -> Result<()> {
    let env = Env::new().await?;
    let host = simple_image("index-host")?;
    push_index(&env.registry, "multi/arch", "v1", &host)?;
    assert_eq!(pull(&env, &env.r("multi/arch:v1")).await?, host.id());
    assert!(status(&env, &env.r("multi/arch:v1")).await?.is_some());

    let docker = build_image(
        vec![busybox_layer()?],
        &ImageOpts {
            docker: true,
            label: Some("docker".into()),
            ..Default::default()
        },
    )?;
    push_image(&env.registry, "docker/img", "v1", &docker)?;
    assert_eq!(pull(&env, &env.r("docker/img:v1")).await?, docker.id());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_users_become_uid_or_username() -> Result<()> {
    let env = Env::new().await?;
    for (tag, user) in [("num", "1002"), ("name", "www-data"), ("pair", "1003:33")] {
        let img = build_image(
            vec![busybox_layer()?],
            &ImageOpts {
                user: Some(user.into()),
                ..Default::default()
            },
        )?;
        push_image(&env.registry, "users/img", tag, &img)?;
        pull(&env, &env.r(&format!("users/img:{tag}"))).await?;
    }
    let st = status(&env, &env.r("users/img:num"))
        .await?
        .context("num")?;
    assert_eq!(st.uid.map(|u| u.value), Some(1002));
    assert_eq!(st.username, "");
    let st = status(&env, &env.r("users/img:pair"))
        .await?
        .context("pair")?;
    assert_eq!(st.uid.map(|u| u.value), Some(1003));
    let st = status(&env, &env.r("users/img:name"))
        .await?
        .context("name")?;
    assert_eq!(st.uid, None);
    assert_eq!(st.username, "www-data");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_cases_follow_cri_semantics() -> Result<()> {
    let env = Env::new().await?;
    let e = pull(&env, "UPPER/Case::bad@@").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = pull(&env, &env.r("missing/img:v1")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(status(&env, &env.r("missing/img:v1")).await?.is_none());
    assert!(
        status(
            &env,
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )
        .await?
        .is_none()
    );
    remove(&env, &env.r("missing/img:v1")).await?;
    assert!(list(&env).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_names_rewrites_and_mirrors_resolve() -> Result<()> {
    let extra = "[[registry]]\nprefix = \"rewrite.invalid/x\"\nlocation = \"{HOST}/x\"\ninsecure = true\n\n\
                 [[registry]]\nlocation = \"mirrored.invalid/m\"\n\n[[registry.mirror]]\nlocation = \"{HOST}/m\"\ninsecure = true\n";
    let env = Env::with_registries_extra(extra).await?;
    let img = simple_image("short")?;
    push_image(&env.registry, "shorty", "v1", &img)?;
    push_image(&env.registry, "x/rewritten", "v1", &img)?;
    push_image(&env.registry, "m/mirrored", "v1", &img)?;

    assert_eq!(pull(&env, "shorty:v1").await?, img.id());
    let st = status(&env, &env.r("shorty:v1"))
        .await?
        .context("short name pulled under its qualified name")?;
    assert!(
        st.repo_tags.contains(&env.r("shorty:v1")),
        "{:?}",
        st.repo_tags
    );

    assert_eq!(
        pull(&env, "rewrite.invalid/x/rewritten:v1").await?,
        img.id()
    );
    assert!(
        status(&env, "rewrite.invalid/x/rewritten:v1")
            .await?
            .is_some()
    );
    assert_eq!(
        pull(&env, "mirrored.invalid/m/mirrored:v1").await?,
        img.id()
    );
    assert!(
        status(&env, "mirrored.invalid/m/mirrored:v1")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_agree() -> Result<()> {
    let env = Env::new().await?;
    let l2 = LayerBuilder::new()
        .file("big", &vec![7u8; 4 << 20], 0o644)?
        .finish(Comp::Gzip)?;
    let img = build_image(vec![busybox_layer()?, l2], &ImageOpts::default())?;
    push_image(&env.registry, "conc/img", "v1", &img)?;
    let name = env.r("conc/img:v1");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let sock = env.daemon.sock.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = crust_proto::cri::image_service_client::ImageServiceClient::new(
                connect(&sock).await?,
            );
            let r = c
                .pull_image(PullImageRequest {
                    image: spec(&name),
                    ..Default::default()
                })
                .await?;
            Ok::<_, anyhow::Error>(r.into_inner().image_ref)
        }));
    }
    for t in tasks {
        assert_eq!(t.await??, img.id());
    }
    assert_eq!(list(&env).await?.len(), 1);
    assert_eq!(env.daemon.layer_dirs().len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_layers_are_fetched_once_and_freed_when_unused() -> Result<()> {
    let env = Env::new().await?;
    let base = busybox_layer()?;
    let a = build_image(
        vec![
            base.clone(),
            LayerBuilder::new()
                .file("a", b"a", 0o644)?
                .finish(Comp::Gzip)?,
        ],
        &ImageOpts::default(),
    )?;
    let b = build_image(
        vec![
            base.clone(),
            LayerBuilder::new()
                .file("b", b"b", 0o644)?
                .finish(Comp::Gzip)?,
        ],
        &ImageOpts::default(),
    )?;
    push_image(&env.registry, "share/a", "v1", &a)?;
    push_image(&env.registry, "share/b", "v1", &b)?;

    pull(&env, &env.r("share/a:v1")).await?;
    assert_eq!(env.daemon.layer_dirs().len(), 2);
    let (bytes_a, _) = fs_used(&env).await?;
    pull(&env, &env.r("share/b:v1")).await?;
    assert_eq!(
        env.daemon.layer_dirs().len(),
        3,
        "the shared base layer is stored once"
    );
    assert_eq!(
        env.registry.blob_gets(&base.digest),
        1,
        "the shared base layer is fetched once"
    );
    let (bytes_ab, _) = fs_used(&env).await?;
    assert!(bytes_ab > bytes_a);

    remove(&env, &env.r("share/a:v1")).await?;
    assert!(status(&env, &env.r("share/a:v1")).await?.is_none());
    assert_eq!(
        env.daemon.layer_dirs().len(),
        2,
        "a's own layer is freed, the shared one kept"
    );
    assert!(env.daemon.layer_diff(base.diff_hex()).exists());
    remove(&env, b.id()).await?;
    assert!(list(&env).await?.is_empty());
    assert_eq!(env.daemon.layer_dirs().len(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_tag_keeps_the_other() -> Result<()> {
    let env = Env::new().await?;
    let img = simple_image("tags")?;
    push_image(&env.registry, "tags/img", "v1", &img)?;
    push_image(&env.registry, "tags/img", "v2", &img)?;
    pull(&env, &env.r("tags/img:v1")).await?;
    pull(&env, &env.r("tags/img:v2")).await?;
    let st = status(&env, img.id()).await?.context("pulled")?;
    assert_eq!(st.repo_tags.len(), 2, "{:?}", st.repo_tags);

    remove(&env, &env.r("tags/img:v1")).await?;
    assert!(status(&env, &env.r("tags/img:v1")).await?.is_none());
    let st = status(&env, &env.r("tags/img:v2"))
        .await?
        .context("v2 kept")?;
    assert_eq!(st.repo_tags, vec![env.r("tags/img:v2")]);
    assert_eq!(env.daemon.layer_dirs().len(), 1);
    remove(&env, &env.r("tags/img:v2")).await?;
    assert!(list(&env).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_survive_a_daemon_crash() -> Result<()> {
    let mut env = Env::new().await?;
    let img = simple_image("restart")?;
    push_image(&env.registry, "restart/img", "v1", &img)?;
    pull(&env, &env.r("restart/img:v1")).await?;
    env.daemon.kill9();
    env.daemon.spawn().await?;
    let all = list(&env).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, img.id());
    assert!(status(&env, &env.r("restart/img:v1")).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_diff_id_fails_and_leaves_nothing_behind() -> Result<()> {
    let env = Env::new().await?;
    let l = busybox_layer()?;
    let bogus = format!("sha256:{}", "ab".repeat(32));
    let img = build_image(
        vec![l],
        &ImageOpts {
            diff_ids: Some(vec![bogus]),
            ..Default::default()
        },
    )?;
    push_image(&env.registry, "bad/img", "v1", &img)?;
    let e = pull(&env, &env.r("bad/img:v1")).await.unwrap_err();
    assert_ne!(e.code(), Code::Ok);
    assert!(
        env.daemon.layer_dirs().is_empty(),
        "{:?}",
        env.daemon.layer_dirs()
    );
    let tmp: Vec<_> = std::fs::read_dir(env.daemon.root.join("storage/tmp"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert!(list(&env).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_commands_work_against_the_daemon() -> Result<()> {
    let env = Env::new().await?;
    let img = simple_image("ctl")?;
    push_image(&env.registry, "ctl/img", "v1", &img)?;
    let name = env.r("ctl/img:v1");
    let hex = img.id().trim_start_matches("sha256:");
    let d = &env.daemon;
    let run = |args: &[&str]| -> Result<String> {
        let (ok, out, err) = d.ctl(args)?;
        assert!(ok, "crust ctl {args:?} failed: {err}");
        Ok(out)
    };
    assert!(run(&["version"])?.contains("crust"));
    run(&["info"])?;
    assert!(run(&["pull", &name])?.contains(hex));
    assert!(run(&["images"])?.contains(&hex[..12]));
    assert!(run(&["inspecti", &name])?.contains(hex));
    run(&["imagefsinfo"])?;
    run(&["rmi", &name])?;
    assert!(list(&env).await?.is_empty());
    Ok(())
}
