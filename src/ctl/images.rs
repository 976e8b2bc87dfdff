//! Image subcommands of `crust ctl`: pull, images, inspecti, rmi (crictl's output shapes).

use std::time::Duration;

use crust_proto::cri;
use crust_proto::cri::image_service_client::ImageServiceClient;
use tonic::transport::Channel;

use super::{CtlError, call, info_json, print_json};

type Client = ImageServiceClient<Channel>;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

/// `pull [--creds U:P | --auth B64] IMAGE`.
pub async fn pull(
    c: &mut Client,
    t: Duration,
    creds: Option<String>,
    auth: Option<String>,
    image: String,
) -> Result<(), CtlError> {
    let auth = match (creds, auth) {
        (Some(creds), _) => {
            let (username, password) = creds.split_once(':').ok_or(CtlError::Creds)?;
            Some(cri::AuthConfig {
                username: username.to_owned(),
                password: password.to_owned(),
                ..Default::default()
            })
        }
        (None, Some(auth)) => Some(cri::AuthConfig {
            auth,
            ..Default::default()
        }),
        (None, None) => None,
    };
    let req = cri::PullImageRequest {
        image: spec(&image),
        auth,
        sandbox_config: None,
    };
    let r = call("PullImage", t, c.pull_image(req)).await?;
    println!("Image is up to date for {}", r.image_ref);
    Ok(())
}

/// Split `repo:tag` (the tag is after the last `:` that follows the last `/`).
fn split_tag(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "<none>"),
    }
}

/// Decimal size with 3 significant digits, like crictl (docker/go-units HumanSize).
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..13).unwrap_or(id)
}

/// `images [-q] [--digests] [IMAGE]`.
pub async fn list(
    c: &mut Client,
    t: Duration,
    quiet: bool,
    digests: bool,
    image: Option<String>,
) -> Result<(), CtlError> {
    let req = cri::ListImagesRequest {
        filter: image.map(|i| cri::ImageFilter { image: spec(&i) }),
    };
    let r = call("ListImages", t, c.list_images(req)).await?;
    if quiet {
        let mut seen = std::collections::HashSet::new();
        for img in &r.images {
            if seen.insert(img.id.clone()) {
                println!("{}", img.id);
            }
        }
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["IMAGE", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE"]);
    rows.push(header.into_iter().map(str::to_owned).collect());
    for img in &r.images {
        let digest = img
            .repo_digests
            .first()
            .and_then(|d| d.rsplit_once('@'))
            .map_or("<none>", |(_, d)| d);
        let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        let digest = digest.get(..13).unwrap_or(digest).to_owned();
        let mut names: Vec<(String, String)> = img
            .repo_tags
            .iter()
            .map(|t| {
                let (r, tag) = split_tag(t);
                (r.to_owned(), tag.to_owned())
            })
            .collect();
        if names.is_empty() {
            let repo = img
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>", |(r, _)| r);
            names.push((repo.to_owned(), "<none>".to_owned()));
        }
        for (repo, tag) in names {
            let mut row = vec![repo, tag];
            if digests {
                row.push(digest.clone());
            }
            row.push(short_id(&img.id).to_owned());
            row.push(human_size(img.size));
            rows.push(row);
        }
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!(
                    "{cell:<w$}   ",
                    w = widths.get(i).copied().unwrap_or(0)
                ));
            }
        }
        println!("{}", line.trim_end());
    }
}

async fn status(
    c: &mut Client,
    t: Duration,
    image: &str,
) -> Result<cri::ImageStatusResponse, CtlError> {
    let req = cri::ImageStatusRequest {
        image: spec(image),
        verbose: true,
    };
    call("ImageStatus", t, c.image_status(req)).await
}

/// `inspecti IMAGE...`: prints what is found, fails if any image is missing.
pub async fn inspect(c: &mut Client, t: Duration, images: Vec<String>) -> Result<(), CtlError> {
    let mut missing = Vec::new();
    for image in images {
        let r = status(c, t, &image).await?;
        let Some(img) = r.image else {
            missing.push(image);
            continue;
        };
        let mut out = serde_json::Map::new();
        out.insert(
            "status".to_owned(),
            serde_json::to_value(&img).map_err(CtlError::Json)?,
        );
        let mut info = serde_json::Map::new();
        info_json(&r.info, &mut info);
        out.insert("info".to_owned(), serde_json::Value::Object(info));
        print_json(&serde_json::Value::Object(out))?;
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CtlError::NoSuchImage {
            image: missing.join(", "),
        })
    }
}

/// `rmi IMAGE...`: resolves each image first so the deleted tags can be printed.
pub async fn remove(c: &mut Client, t: Duration, images: Vec<String>) -> Result<(), CtlError> {
    for image in images {
        let Some(img) = status(c, t, &image).await?.image else {
            return Err(CtlError::NoSuchImage { image });
        };
        let req = cri::RemoveImageRequest {
            image: spec(&img.id),
        };
        call("RemoveImage", t, c.remove_image(req)).await?;
        if img.repo_tags.is_empty() {
            println!("Deleted: {}", img.id);
        }
        for tag in &img.repo_tags {
            println!("Deleted: {tag}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_sizes() {
        assert_eq!(
            split_tag("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox", "1.36")
        );
        assert_eq!(
            split_tag("localhost:5000/x"),
            ("localhost:5000/x", "<none>")
        );
        assert_eq!(split_tag("localhost:5000/x:y"), ("localhost:5000/x", "y"));
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_300_000), "4.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789abc");
    }
}
