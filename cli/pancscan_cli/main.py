"""The `pancscan` command: predict (runtime only), train and evaluate (TensorFlow, lazily imported)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from pancscan.detection.predict import ScanResult, predict_bytes, rejected
from pancscan.errors import ScanRejected
from pancscan.reading.archive import zip_folder

MAX_FILE_BYTES = 512 * 1024 * 1024
DISCLAIMER = "PancScan is research software, not a medical device: never use it for diagnosis."
LABEL_TEXT = {"cancer_detected": "Cancer detected", "no_cancer_detected": "No cancer detected"}


def predict_path(path: Path, model) -> ScanResult:
    """A file (PNG, JPEG, DICOM, zip of a DICOM series, NIfTI) or a folder holding one DICOM series."""
    try:
        if path.is_dir():
            data = zip_folder(path, MAX_FILE_BYTES)
        elif path.stat().st_size > MAX_FILE_BYTES:
            raise ScanRejected("too_large", f"The file is over {MAX_FILE_BYTES // 2**20} MB.")
        else:
            data = path.read_bytes()
    except ScanRejected as reason:
        return rejected(reason, model)
    except OSError:
        return rejected(ScanRejected("unreadable_file", "The file could not be opened."), model)
    return predict_bytes(data, model)


def describe(path: str, result: ScanResult) -> str:
    if result.status == "rejected":
        return f"{path}: rejected ({result.reason.code}): {result.reason.message}"
    where = ""
    if result.series:
        where = f"; most suspicious slice {result.series['most_suspicious_slice'] + 1} of {result.series['slices']}"
    return (
        f"{path}: {LABEL_TEXT[result.label]} (probability {result.probability:.2f}, "
        f"confidence {result.confidence:.2f}, threshold {result.threshold:.2f}, model {result.model_version}{where})"
    )


def _predict(args: argparse.Namespace) -> int:
    from pancscan.detection.model import load_model

    try:
        model = load_model(args.model)
    except (OSError, ValueError, KeyError) as exc:
        print(f"pancscan: cannot load the model: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(DISCLAIMER, file=sys.stderr)
    for name in args.paths:
        result = predict_path(Path(name), model)
        if args.heatmap_dir and result.heatmap is not None:
            from pancscan_client.overlay import save_overlay

            save_overlay(result.image * 255.0, result.heatmap, Path(args.heatmap_dir) / f"{Path(name).stem}.heatmap.png")
        print(json.dumps({"path": name, **result.as_dict()}) if args.json else describe(name, result), flush=True)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pancscan_model.train import TrainConfig, train

    given = {"steps": args.steps, "seed": args.seed, "crop": args.crop, "folds": args.folds, "fold": args.fold,
             "precision": args.precision, "width": args.width, "mine_false_alarms_at": args.mine_false_alarms_at}
    if args.false_alarm_crops is not None:
        mix = TrainConfig().mix
        given["mix"] = replace(mix, normal=mix.normal - args.false_alarm_crops, false_alarms=args.false_alarm_crops)
    try:
        config = TrainConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as error:
        raise SystemExit(f"pancscan train: {error}") from None
    train(args.data, args.msd, args.out, config, log=lambda line: print(line, flush=True))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pancscan_model.evaluate import evaluate

    evaluate(args.data, msd_dir=args.msd, model_path=args.model, out_dir=args.out, log=lambda line: print(line, flush=True),
             held_out=args.held_out, fold=args.fold or 0)
    return 0


def _export(args: argparse.Namespace) -> int:
    from pancscan_model.train import reexport

    reexport(args.model_dir, args.data, args.msd, log=lambda line: print(line, flush=True))
    return 0


def _fit_series(args: argparse.Namespace) -> int:
    from pancscan_model.calibration import refit_series_rule

    refit_series_rule(args.data, args.msd, args.model, log=lambda line: print(line, flush=True))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from pancscan_client.submit import ClientCredentials, run

    credentials = None
    if args.client_id:
        secret = os.environ.get("PANCSCAN_CLIENT_SECRET")
        if not (args.token_url and secret):
            raise SystemExit("with a client id, give --token-url and the secret in PANCSCAN_CLIENT_SECRET")
        credentials = ClientCredentials(args.token_url, args.client_id, secret, args.retries)
    try:
        counts = run([Path(p) for p in args.paths], args.api, Path(args.out), token=args.token, credentials=credentials,
                     concurrency=args.concurrency, retries=args.retries, dicom_sc=Path(args.dicom_sc) if args.dicom_sc else None)
    except RuntimeError as refused:  # the token endpoint refused the client
        raise SystemExit(f"pancscan submit: {refused}") from None
    print(json.dumps(counts))
    return 0 if not counts.get("error") else 1


def _gateway(args: argparse.Namespace) -> int:
    import logging
    import signal

    from pancscan_client.gateway import Destination, Gateway, api_submitter, credentials_from, dicom_sender, dicomweb_sender, serve
    from pancscan_client.submit import Client, ClientCredentials, ClientRefused

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.token_url:
        raise SystemExit("pancscan gateway: give --token-url (or PANCSCAN_TOKEN_URL): the hospital API's token endpoint")
    if bool(args.pacs) == bool(args.pacs_dicomweb):
        raise SystemExit("pancscan gateway: give where results go back: --pacs AE@HOST:PORT or --pacs-dicomweb URL")
    client_id, secret = credentials_from(os.environ, args.credentials)
    client = Client(args.api, credentials=ClientCredentials(args.token_url, client_id, secret), timeout_s=args.result_timeout)
    send = dicom_sender(Destination.parse(args.pacs), args.ae_title) if args.pacs else dicomweb_sender(args.pacs_dicomweb)
    gateway = Gateway(Path(args.state), api_submitter(client), send, settle_s=args.settle, min_slices=args.min_slices)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        serve(gateway, args.ae_title, args.host, args.port, stop=lambda: bool(stopping))
    except ClientRefused as refused:
        raise SystemExit(f"pancscan gateway: the API refused this client ({refused}); nothing more is submitted") from None
    return 0


def _gateway_pull(args: argparse.Namespace) -> int:
    from pancscan_client.gateway import Gateway, dicomweb_study

    gateway = Gateway(Path(args.state))
    instances = dicomweb_study(args.dicomweb, args.study)
    for ds in instances:
        gateway.receive(ds)
    print(f"{len(instances)} instances received; the running gateway takes them once the series settle", file=sys.stderr)
    return 0


def _export_results(args: argparse.Namespace) -> int:
    from pancscan.service.aws import DynamoResearchStore
    from pancscan.service.research import write_csv

    entries = DynamoResearchStore(args.table).entries()
    if args.out == "-":
        count = write_csv(entries, sys.stdout)
    else:
        with open(args.out, "w", newline="") as out:
            count = write_csv(entries, out)
    print(f"{count} results", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pancscan_local.stack import serve

    return serve(args.host, args.port, args.s3_port, auth=args.auth, research_days=args.research_days)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pancscan", description=f"PancScan. {DISCLAIMER}")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="score CT: PNG, JPEG, DICOM, a zip or folder of one DICOM series, NIfTI")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--json", action="store_true", help="one JSON object per input per line")
    predict.add_argument("--model", help="a .tflite with its .json beside it (default: the shipped model)")
    predict.add_argument("--heatmap-dir", help="also write each slice with its heatmap drawn over it, as PNG")
    predict.set_defaults(run=_predict)

    msd_help = "folder with images/, tumour_masks/ and slices.csv (MSD Task07 tumour slices)"
    train = commands.add_parser("train", help="train, calibrate and export a model (needs the 'train' extra)")
    train.add_argument("--data", required=True, help="folder with images/ and masks/ (NIH Pancreas-CT slices)")
    train.add_argument("--msd", required=True, help=msd_help)
    train.add_argument("--out", required=True, help="folder for pancscan.tflite, pancscan.json and logs")
    # Defaults live in TrainConfig (those of the shipped model); options given here override them.
    train.add_argument("--steps", type=int, help="optimisation steps")
    train.add_argument("--crop", type=int, help="train on crops of this size of the 256x256 input")
    train.add_argument("--seed", type=int)
    train.add_argument("--folds", type=int, help="cross-fitting: K fold models score the non-test cases and patients they did not see "
                       "(calibration, threshold, series rule); the model trains on all of them")
    train.add_argument("--fold", type=int, help="with --folds: train fold K's model alone, calibrated on the cases it holds out "
                       "(to compare settings on one fold; `pancscan evaluate --held-out` scores it)")
    train.add_argument("--width", type=float, help="the network's channels, times those of the default network (228k parameters)")
    train.add_argument("--mine-false-alarms-at", type=float, metavar="FRACTION",
                       help="after this fraction of the steps, mine the model's false alarms on its training slices ...")
    train.add_argument("--false-alarm-crops", type=int, metavar="N", help="... and centre N of the normal crops of each later batch on them")
    train.add_argument("--precision", choices=("float32", "mixed_bfloat16"), help="of the training steps (weights stay float32)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="metrics table, JSON report, ROC and calibration plots")
    evaluate.add_argument("--data", required=True,
                          help="NIH slices (images/, masks/; with --msd: the model's test cases and patients), "
                               "class folders (normal/, cancer/) or MSD Task07 NIfTI (imagesTr/, labelsTr/)")
    evaluate.add_argument("--msd", help=msd_help + ": real tumours of the model's test cases")
    evaluate.add_argument("--model", help="a .tflite with its .json beside it (default: the shipped model)")
    evaluate.add_argument("--out", default="evaluation", help="folder for report.json and the plots")
    evaluate.add_argument("--held-out", action="store_true", help="with --msd: the model's held-out cases and patients, not its "
                          "test ones, to choose between models: its validation part scored by the model, or (cross-fitted) every "
                          "non-test case scored by the fold model that did not see it, not by the model, which trained on all")
    evaluate.add_argument("--fold", type=int, help="with --held-out, of a cross-fitted model: fold K's model on its held-out cases alone")
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", help="export a trained model's weights again and calibrate it on its validation cases")
    export.add_argument("model_dir", help="folder with pancscan.weights.h5 and pancscan.json (rewritten with pancscan.tflite)")
    export.add_argument("--data", required=True, help="NIH slices (images/, masks/)")
    export.add_argument("--msd", required=True, help=msd_help)
    export.set_defaults(run=_export)

    fit_series = commands.add_parser("fit-series", help="choose and calibrate the scan-level rule on validation cases and patients")
    fit_series.add_argument("--data", required=True, help="NIH slices (images/, masks/)")
    fit_series.add_argument("--msd", required=True, help=msd_help)
    fit_series.add_argument("--model", help="a .tflite with its .json beside it; the rule is written into the .json")
    fit_series.set_defaults(run=_fit_series)

    submit = commands.add_parser("submit", help="send files and folders of scans to a PancScan API (batch, resumable)")
    submit.add_argument("paths", nargs="+", metavar="PATH", help="files, folders of scans, or a folder holding one DICOM series")
    submit.add_argument("--api", default="http://127.0.0.1:8080", help="the API's base URL")
    submit.add_argument("--token", help="a bearer token, where the API requires one")
    submit.add_argument("--client-id", default=os.environ.get("PANCSCAN_CLIENT_ID"),
                        help="a hospital's app client id (default $PANCSCAN_CLIENT_ID): get and renew tokens with the "
                             "client-credentials flow; the secret is read from $PANCSCAN_CLIENT_SECRET, never the command line")
    submit.add_argument("--token-url", default=os.environ.get("PANCSCAN_TOKEN_URL"),
                        help="the token endpoint (the stack's TokenUrl output; default $PANCSCAN_TOKEN_URL)")
    submit.add_argument("--out", default="pancscan-results", help="folder for results.jsonl and results.csv")
    submit.add_argument("--dicom-sc", metavar="FOLDER",
                        help="also write each DICOM scan's result as a DICOM Secondary Capture (heatmap and result burned in), "
                             "filed into the source study with its patient and study attributes copied here, locally")
    submit.add_argument("--concurrency", type=int, default=4)
    submit.add_argument("--retries", type=int, default=4, help="per request, with exponential backoff")
    submit.set_defaults(run=_submit)

    gateway = commands.add_parser("gateway", help="a DICOM node at the hospital: C-STORE from the PACS in, results back as DICOM SR")
    gateway.add_argument("--pacs", metavar="AE@HOST:PORT", help="where results go back (C-STORE)")
    gateway.add_argument("--pacs-dicomweb", metavar="URL", help="or a DICOMweb server's root they go back to (STOW-RS)")
    gateway.add_argument("--api", default="http://127.0.0.1:8080", help="the PancScan API's base URL")
    gateway.add_argument("--token-url", default=os.environ.get("PANCSCAN_TOKEN_URL"), help="the API's token endpoint")
    gateway.add_argument("--credentials", metavar="FILE",
                         help='a JSON file {"client_id", "client_secret"}; else PANCSCAN_CLIENT_ID and PANCSCAN_CLIENT_SECRET')
    gateway.add_argument("--ae-title", default="PANCSCAN", help="the gateway's own AE title")
    gateway.add_argument("--host", default="0.0.0.0", help="address to listen on")
    gateway.add_argument("--port", type=int, default=11112, help="DICOM port to listen on")
    gateway.add_argument("--state", default="pancscan-gateway", help="folder for pending images, results and the UID key")
    gateway.add_argument("--settle", type=float, default=10.0, help="seconds without a new image before a series counts as whole")
    gateway.add_argument("--min-slices", type=int, default=1, help="fewer images than this: the series is ignored")
    gateway.add_argument("--result-timeout", type=float, default=600, help="seconds to wait for a result")
    gateway.set_defaults(run=_gateway)

    pull = commands.add_parser("gateway-pull", help="tell the gateway a study is ready: pull it from a DICOMweb server (WADO-RS)")
    pull.add_argument("--dicomweb", required=True, metavar="URL", help="the DICOMweb server's root, e.g. http://pacs:8042/dicom-web")
    pull.add_argument("--study", required=True, metavar="UID", help="the Study Instance UID")
    pull.add_argument("--state", default="pancscan-gateway", help="the running gateway's state folder")
    pull.set_defaults(run=_gateway_pull)

    export = commands.add_parser("export-results", help="the de-identified results kept for research (ResearchRetentionDays) as CSV")
    export.add_argument("--table", required=True, help="the stack's ResearchTableName output (AWS credentials from the environment)")
    export.add_argument("--out", default="-", help="a CSV file (default: standard output)")
    export.set_defaults(run=_export_results)

    serve = commands.add_parser("serve", help="run the site, API and inference locally against moto (no AWS account)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="site and API (0: one the system chooses, printed)")
    serve.add_argument("--s3-port", type=int, default=5000, help="the AWS stand-in (moto: S3, DynamoDB, SQS, Cognito; 0: one the system chooses)")
    serve.add_argument("--auth", action="store_true",
                       help="as deployed with AuthMode jwt: hospital clients with access tokens only (prints a local client's id and secret)")
    serve.add_argument("--research-days", type=int, default=0, help="keep de-identified results this many days (0: off)")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
