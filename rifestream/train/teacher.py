"""The privileged teacher of RIFE's training: one extra IFBlock that also sees the true middle frame.

It refines the student's final flow and mask at full resolution. Its own
reconstruction loss trains it; the student's flows are pulled towards the
teacher's with the distillation loss (weight 0.01 in the total), computed
against a *detached* teacher flow so that no gradient reaches the teacher
through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rifestream.model.ifnet import IFBlock, IFNetOutput
from rifestream.model.warp import warp

TEACHER_IN = 3 + 3 + 1 + 1 + 3 + 4  # w0, w1, t, mask, ground truth, flow


@dataclass
class TeacherOutput:
    frame: torch.Tensor
    flow: torch.Tensor


class Teacher(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.block = IFBlock(TEACHER_IN, channels, 5)

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, gt: torch.Tensor, t: torch.Tensor, student: IFNetOutput
    ) -> TeacherOutput:
        flow = student.flows[-1]
        mask_logit = torch.logit(student.mask.clamp(1e-4, 1 - 1e-4))
        x = torch.cat((student.warped0, student.warped1, t, student.mask, gt), 1)
        d_flow, d_mask, _ = self.block(x, flow, 1.0)
        flow = flow + d_flow
        m = torch.sigmoid(mask_logit + d_mask)
        frame = warp(img0, flow[:, 0:2]) * m + warp(img1, flow[:, 2:4]) * (1 - m)
        return TeacherOutput(frame=frame, flow=flow)


def distillation_loss(
    student_flows: list[torch.Tensor],
    student_frame: torch.Tensor,
    teacher: TeacherOutput,
    gt: torch.Tensor,
) -> torch.Tensor:
    """RIFE's distillation term: per-pixel flow distance to the detached teacher flow,
    only where the teacher reconstructs better than the student, summed over the student's blocks."""
    with torch.no_grad():
        student_err = (student_frame - gt).abs().mean(1, keepdim=True)
        teacher_err = (teacher.frame - gt).abs().mean(1, keepdim=True)
        where = (student_err > teacher_err + 0.01).float()
        target = teacher.flow.detach()
    total = student_frame.new_zeros(())
    for flow in student_flows:
        dist = ((target - flow) ** 2).mean(1, keepdim=True).add(1e-8).sqrt()
        total = total + (dist * where).mean()
    return total
