"""`medseg ensemble`: list, add or remove the members of an ensemble model folder.

    medseg ensemble MODEL_DIR                                  (list the networks and their weights)
    medseg ensemble MODEL_DIR --add MEMBER_DIR --weight 0.5 [--name NAME] [--force] [--role mean|outline]
    medseg ensemble MODEL_DIR --remove NAME
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.inference.model_folder import ModelFolder


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "ensemble",
        help="add or remove networks whose probabilities a model folder averages with its own",
        description="A model folder can average its own network's calibrated probabilities with those of member "
        "model folders copied into MODEL_DIR/members/ (each on its own grid, with its own temperature); the "
        "folder's own card then refines, cleans up and checks the mean once. An outline member (--role outline) "
        "is not in the mean: on scans with the skull on it may only trim the mean's brain outline, by its weight. "
        "Without --add or --remove: list the networks and their weights.",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="the ensemble's model folder")
    change = parser.add_mutually_exclusive_group()
    change.add_argument("--add", type=Path, metavar="MEMBER_DIR",
                        help="a model folder (or a bundled model's name) segmenting the same classes; calibrate it "
                        "first with `medseg calibrate`")
    change.add_argument("--remove", metavar="NAME", help="drop this member; the others' weights grow in proportion")
    parser.add_argument("--weight", type=float, default=0.5, metavar="W",
                        help="with --add: the member's weight in (0, 1); the weights already there are multiplied "
                        "by 1 - W (default 0.5: a first member makes a half-and-half mean)")
    parser.add_argument("--name", default="", help="with --add: the member's folder name (default: MEMBER_DIR's name)")
    parser.add_argument("--force", action="store_true", help="with --add: replace a member of the same name")
    parser.add_argument("--role", choices=("mean", "outline"), default="mean",
                        help="with --add: 'mean' (default) joins the weighted mean; 'outline' only raises the mean's "
                        "background toward this network's where it sees background more surely, on scans with the "
                        "skull on, by --weight (medseg.inference.outline_member); at most one")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Change the members if asked, then print the networks and their weights."""
    from medseg.errors import ConfigError
    from medseg.inference.ensemble import add_member, remove_member
    from medseg.inference.model_folder import load_model_folder
    from medseg.resources import resolve

    if args.add is not None:
        try:
            model = add_member(args.model_dir, resolve("model", args.add), args.weight, name=args.name,
                               replace_existing=args.force, role=args.role)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    elif args.remove is not None:
        model = remove_member(args.model_dir, args.remove)
    else:
        model = load_model_folder(args.model_dir)
    print(f"{model.path}:")
    print(f"  own network: {_network(model)}, weight {model.card.own_weight:.3g}")
    for member, folder in zip(model.card.ensemble, model.members):
        role = "" if member.role == "mean" else f" ({member.role} member: trims the brain outline on whole heads)"
        print(f"  member {member.name}: {_network(folder)}, weight {member.weight:.3g}{role}")
    return 0


def _network(folder: ModelFolder) -> str:
    """``"unet, 2 x 2 x 2 mm, T 1.27"``."""
    spacing = " x ".join(f"{s:g}" for s in folder.config.transforms.spacing)
    return f"{folder.card.network}, {f'{spacing} mm' if spacing else 'the scan grid'}, T {folder.temperature:.3g}"
