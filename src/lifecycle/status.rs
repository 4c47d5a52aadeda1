use serde::{Deserialize, Serialize};

/// Where a video stands. `rank` orders the forward path; `failed` ends an attempt and `deleted`
/// ends the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Uploaded,
    Processing,
    Processed,
    Ready,
    Failed,
    Deleted,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Uploaded,
        Status::Processing,
        Status::Processed,
        Status::Ready,
        Status::Failed,
        Status::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Uploaded => "uploaded",
            Status::Processing => "processing",
            Status::Processed => "processed",
            Status::Ready => "ready",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Position on the forward path (`uploaded` 1 … `ready` 4); `failed` and `deleted` are off it.
    pub fn rank(self) -> Option<u8> {
        match self {
            Status::Uploaded => Some(1),
            Status::Processing => Some(2),
            Status::Processed => Some(3),
            Status::Ready => Some(4),
            Status::Failed | Status::Deleted => None,
        }
    }

    /// Nothing follows `deleted`; every other status can still change.
    pub fn is_terminal(self) -> bool {
        self == Status::Deleted
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
