//! A client of skopeo's image proxy protocol built from the real `containers-image-proxy` crate
//! (what bootc, rpm-ostree and composefs-rs use), for scripts/bench: it starts a proxy, pulls one
//! image the way those clients do (OpenImage, GetManifest, GetFullConfig, then every layer in
//! order through GetBlob and FinishPipe, each read to its end and checked against its digest by
//! the client itself) and prints what it read and how long that took.
//!
//! Usage: `proxy_pull REFERENCE PROGRAM [ROOT FLAGS...]`: the proxy is started as `PROGRAM [ROOT
//! FLAGS...] experimental-image-proxy [the crate's flags]`, with `--tls-verify=false`; PROGRAM is
//! `ferry` or `skopeo`, ROOT FLAGS for example `--policy FILE --registries.d DIR` (both take
//! those before the subcommand). Exits non-zero on any failure or digest mismatch.

use std::process::{Command, ExitCode};
use std::time::Instant;

use containers_image_proxy::{ImageProxy, ImageProxyConfig};
use sha2::Digest as _;
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, program, root @ ..] = args.as_slice() else {
        eprintln!("usage: proxy_pull REFERENCE PROGRAM [ROOT FLAGS...]");
        return ExitCode::from(2);
    };
    match pull(reference, program, root).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy_pull: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn pull(reference: &str, program: &str, root: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let mut command = Command::new(program);
    command.args(root);
    let mut config = ImageProxyConfig::default();
    config.skopeo_cmd = Some(command);
    config.insecure_skip_tls_verification = Some(true);
    let proxy = ImageProxy::new_with_config(config)
        .await
        .map_err(|e| format!("starting {program}: {e}"))?;
    let img = proxy
        .open_image(reference)
        .await
        .map_err(|e| format!("OpenImage: {e}"))?;
    let (_, manifest) = proxy
        .fetch_manifest(&img)
        .await
        .map_err(|e| format!("GetManifest: {e}"))?;
    proxy
        .fetch_config_raw(&img)
        .await
        .map_err(|e| format!("GetFullConfig: {e}"))?;
    let metadata = started.elapsed();
    let mut total = 0u64;
    for layer in manifest.layers() {
        let (mut reader, driver) = proxy
            .get_descriptor(&img, layer)
            .await
            .map_err(|e| format!("GetBlob {}: {e}", layer.digest()))?;
        let hash = async {
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                let got = reader.read(&mut buf).await?;
                if got == 0 {
                    return Ok::<_, std::io::Error>((n, hex::encode(h.finalize())));
                }
                h.update(buf.get(..got).unwrap_or_default());
                n += got as u64;
            }
        };
        let (read, done) = tokio::join!(hash, driver);
        done.map_err(|e| format!("FinishPipe {}: {e}", layer.digest()))?;
        let (n, hex) = read.map_err(|e| format!("reading {}: {e}", layer.digest()))?;
        let digest = format!("sha256:{hex}");
        if n != layer.size() || digest != layer.digest().to_string() {
            return Err(format!(
                "layer {}: got {n} bytes hashing to {digest}",
                layer.digest()
            ));
        }
        total += n;
    }
    proxy
        .close_image(&img)
        .await
        .map_err(|e| format!("CloseImage: {e}"))?;
    proxy
        .finalize()
        .await
        .map_err(|e| format!("Shutdown: {e}"))?;
    println!(
        "{{\"layers\": {}, \"bytes\": {total}, \"metadata_s\": {:.3}, \"seconds\": {:.3}}}",
        manifest.layers().len(),
        metadata.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
