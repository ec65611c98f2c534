"""随手拍 photo reports: the closed loop 发现 → 上报 → 处置 → 反馈 → 评价 (DESIGN.md)."""
